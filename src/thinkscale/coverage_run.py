"""`thinkscale coverage`: n samples per question at temperature 1 from each model (resumable
records, as `generate` writes them), then the coverage curves of `eval.coverage` for all of them
in one metrics.json and one coverage.png. Wires inference to evaluation, as `demo` does."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from thinkscale import ThinkscaleError
from thinkscale.configs import option
from thinkscale.infer.generate import GenerateConfig, parse_budget
from thinkscale.models import DEFAULT_MODEL


@dataclass
class CoverageConfig(GenerateConfig):
    """`generate`'s settings with refine's defaults (many samples at temperature 1), for several
    models. CLI flags mirror these fields."""

    model: list[str] = option(help="models to compare (embedded names or checkpoint dirs): one line each",
                              factory=lambda: [DEFAULT_MODEL], metavar="MODEL")  # fmt: skip
    n: int = option(256, help="samples per question")
    temperature: float = option(1.0, help="sampling temperature (refine: 1)")
    budgets: list[int | None] = option(help="thinking cap in tokens ('none' = no cap)", type=parse_budget,
                                       factory=lambda: [256])  # fmt: skip
    ks: list[int] | None = option(None, help="k values for chunk coverage and the table (default: powers of "
                                  "two up to n); pass@k is computed for every k <= n")  # fmt: skip
    results: list[str] = option(help="existing results files to include as more lines (label: the file's "
                                "folder name)", factory=list, metavar="FILE")  # fmt: skip

    def validate(self, source: bool = True) -> None:
        if len(self.budgets) != 1 or self.num_ignores != [0]:
            raise ThinkscaleError("coverage samples one setting: give one --budget and no --num-ignore")
        if self.temperature <= 0:
            raise ThinkscaleError("coverage needs sampling: --temperature must be > 0")
        if self.ks is not None and any(k < 1 for k in self.ks):
            raise ThinkscaleError(f"--ks values must be >= 1, got {self.ks}")
        if not self.model and not self.results:
            raise ThinkscaleError("give at least one --model or --results file")
        for f in self.results:
            if not Path(f).is_file():
                raise ThinkscaleError(f"{f}: no such results file")
        self.for_model(self.model[0] if self.model else DEFAULT_MODEL).validate(source)

    def for_model(self, model: str) -> GenerateConfig:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(GenerateConfig)}
        return GenerateConfig(**{**fields, "model": model})


def labels(models: list[str], results: list[str]) -> list[str]:
    """A short unique name per line: the checkpoint's folder name (a trailing `model` folder, as
    experiment scripts write, is named by its parent)."""
    out = []
    for m in [*models, *(str(Path(r).parent) for r in results)]:
        p = Path(m)
        name = p.parent.name if p.name in ("model", "") and p.parent.name else p.name or m
        base, i = name, 2
        while name in out:
            name, i = f"{base}-{i}", i + 1
        out.append(name)
    return out


def coverage(cfg: CoverageConfig, out: str | Path, progress: bool = True) -> dict:
    """Sample every model (out/<label>/results.jsonl, resumed), then write out/metrics.json and
    out/coverage.png; returns the metrics."""
    from thinkscale.eval.coverage import write_coverage
    from thinkscale.infer.generate import generate

    cfg.validate()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ThinkscaleError(f"{out}: is a file; coverage's --out is a directory")
    names = labels(cfg.model, cfg.results)
    runs = {}
    for name, model in zip(names, cfg.model):
        print(f"{name}: {cfg.n} samples per question from {model}")
        runs[name] = generate(cfg.for_model(model), out / name / "results.jsonl", progress=progress)
    runs.update(zip(names[len(cfg.model) :], cfg.results))
    return write_coverage(runs, out, cfg.ks)
