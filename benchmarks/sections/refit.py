"""A later `fit` per backend (`benchmarks/refit.py`)."""

from benchmarks.sections import shared


def refit_lines():
    found, lines = shared.backend_section(
        "refit", "### A later `fit` on a pruned model, on each backend")
    if not found:
        return lines
    r0 = next(iter(found.values()))
    lines += [f"{r0['model']}, mock CIFAR-shaped data, {r0['steps']} steps of batch "
              f"{r0['batch_size']} per `fit`, a new `ProgressivePruningCallback` each time; "
              "medians of alternating (dense, pruned) later fits. Goal: at most the dense "
              f"later `fit` plus {r0['goal_extra_s']} s.", "",
              "| backend | first fit dense (s) | first fit pruned (s) | later fit dense (s) "
              "| later fit pruned (s) | extra | goal |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for backend, r in found.items():
        m = r["median_later_fit_s"]
        lines.append(f"| {backend} | {r['first_fit_s']['dense']:.2f} | "
                     f"{r['first_fit_s']['pruned']:.2f} | {m['dense']:.2f} | {m['pruned']:.2f} "
                     f"| {r['extra_s']:+.2f} s | {shared.met(r['extra_s'] <= r['goal_extra_s'])} |")
    return lines + [""] + shared.provenances(found)
