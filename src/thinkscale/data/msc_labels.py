"""Domain labels for s1's diversity step: the Mathematics Subject Classification (MSC 2020)
two-digit codes with short descriptions (the text a question is embedded against), plus the
sciences s1 added for non-mathematics questions."""

from __future__ import annotations

MSC: dict[str, str] = {
    "00": "General and overarching topics: puzzles, recreational mathematics",
    "01": "History and biography of mathematics",
    "03": "Mathematical logic and foundations: sets, proofs, computability",
    "05": "Combinatorics: counting, permutations, graphs, arrangements",
    "06": "Order, lattices, ordered algebraic structures",
    "08": "General algebraic systems",
    "11": "Number theory: primes, divisibility, remainders, modular arithmetic, digits, integers",
    "12": "Field theory and polynomials: roots of polynomials",
    "13": "Commutative algebra: rings, ideals",
    "14": "Algebraic geometry: curves, varieties",
    "15": "Linear and multilinear algebra; matrix theory: matrices, determinants, vectors",
    "16": "Associative rings and algebras",
    "17": "Nonassociative rings and algebras",
    "18": "Category theory; homological algebra",
    "19": "K-theory",
    "20": "Group theory and generalizations: symmetry groups",
    "22": "Topological groups, Lie groups",
    "26": "Real functions: inequalities, functions of a real variable, derivatives",
    "28": "Measure and integration",
    "30": "Functions of a complex variable: complex numbers",
    "31": "Potential theory",
    "32": "Several complex variables and analytic spaces",
    "33": "Special functions: trigonometric, exponential, logarithm functions",
    "34": "Ordinary differential equations",
    "35": "Partial differential equations",
    "37": "Dynamical systems and ergodic theory",
    "39": "Difference and functional equations: recurrences",
    "40": "Sequences, series, summability: arithmetic and geometric sequences, sums",
    "41": "Approximations and expansions",
    "42": "Harmonic analysis on Euclidean spaces: Fourier series",
    "43": "Abstract harmonic analysis",
    "44": "Integral transforms, operational calculus",
    "45": "Integral equations",
    "46": "Functional analysis",
    "47": "Operator theory",
    "49": "Calculus of variations and optimal control; optimization: maxima and minima",
    "51": "Geometry: triangles, circles, polygons, angles, areas, lengths, coordinates",
    "52": "Convex and discrete geometry: polyhedra, lattice points",
    "53": "Differential geometry",
    "54": "General topology",
    "55": "Algebraic topology",
    "57": "Manifolds and cell complexes",
    "58": "Global analysis, analysis on manifolds",
    "60": "Probability theory and stochastic processes: chance, dice, coins, expected value",
    "62": "Statistics: mean, median, data, averages",
    "65": "Numerical analysis",
    "68": "Computer science: algorithms, programs, complexity",
    "70": "Mechanics of particles and systems",
    "74": "Mechanics of deformable solids",
    "76": "Fluid mechanics",
    "78": "Optics, electromagnetic theory",
    "80": "Classical thermodynamics, heat transfer",
    "81": "Quantum theory",
    "82": "Statistical mechanics, structure of matter",
    "83": "Relativity and gravitational theory",
    "85": "Astronomy and astrophysics",
    "86": "Geophysics",
    "90": "Operations research, mathematical programming: scheduling, rates of work",
    "91": "Game theory, economics, finance: money, prices, costs, profit, interest, wages",
    "92": "Biology and other natural sciences",
    "93": "Systems theory; control",
    "94": "Information and communication theory, circuits",
    "97": "Mathematics education: elementary arithmetic word problems, school mathematics",
}

SCIENCES: dict[str, str] = {
    "physics": "Physics: forces, motion, energy, waves, electricity",
    "chemistry": "Chemistry: reactions, molecules, moles, acids, elements",
    "biology": "Biology: cells, genetics, organisms, evolution",
    "computer-science": "Computer science: programming, code, data structures",
    "astronomy": "Astronomy: planets, stars, orbits",
    "earth-science": "Earth science: geology, weather, climate",
    "economics": "Economics: markets, supply and demand",
    "engineering": "Engineering: circuits, structures, design",
}


def domain_labels() -> dict[str, str]:
    """label -> description; MSC labels read `11 Number theory`."""
    labels = {f"{code} {text.split(':')[0]}": text for code, text in MSC.items()}
    labels.update({name: text for name, text in SCIENCES.items()})
    return labels
