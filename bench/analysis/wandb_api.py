"""W&B's public API for the analysis: reading runs back, publishing a W&B Report."""

from __future__ import annotations

import wandb


def runs(path: str, filters: dict):
    """The runs of ``ENTITY/PROJECT`` matching ``filters``, through the public API."""
    return wandb.Api().runs(path, filters=filters)


def publish_report(path: str, group: str | None, sections: dict[str, list[str]]) -> str:
    """Builds and saves a W&B Report of a project's training runs; returns its URL.

    Args:
        path: ``ENTITY/PROJECT``.
        group: Only this group's runs in the report's panels.
        sections: Per dataset, the verdict lines to show.
    """
    import wandb_workspaces.reports.v2 as wr  # heavy, and only this command needs it

    entity, project = path.split("/", 1)
    blocks = [wr.H1("bench report")]
    for dataset, lines in sections.items():
        blocks += [wr.H2(dataset), wr.UnorderedList(items=lines)]
    runset = wr.Runset(
        entity=entity, project=project, filters=f"Group == '{group}'" if group else ""
    )
    panels = [
        wr.LinePlot(x="epoch", y=["val_accuracy"]),
        wr.BarPlot(metrics=["train_time_s"]),
        wr.ScatterPlot(x="train_time_s", y="final_val_accuracy"),
    ]
    blocks.append(wr.PanelGrid(runsets=[runset], panels=panels))
    report = wr.Report(entity=entity, project=project, title="bench report", blocks=blocks)
    report.save()
    return report.url
