"""`evaluate`: identity scores of generated videos (FaceSim-Arc/Cur, CLIPScore, face FID, motion) into a CSV."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from ..choices import SCORE_PROTOCOLS

DEFAULT_MODEL = Path("models") / "consisid" / "ConsisID-preview"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--videos", nargs="+", required=True, help="video files and/or folders of videos")
    parser.add_argument("--faces", required=True,
                        help="the reference photo, or a folder of photos (each video uses the photo whose name starts "
                             "the video's file or folder name)")
    parser.add_argument("--prompts", default=None, help="CSV with columns video,prompt (adds CLIPScore)")
    parser.add_argument("--protocol", choices=SCORE_PROTOCOLS, default="fixed",
                        help="fixed (default): RGB to CLIP and a real set FID; consisid: the paper scripts' exact "
                             "behaviour (BGR to CLIP, per-frame |a-b|^2 'FID')")
    parser.add_argument("--out", type=Path, default=Path("scores.csv"),
                        help="CSV to write; an existing file is kept unless --overwrite (default %(default)s)")
    parser.add_argument("--plot", type=Path, default=None,
                        help="folder for per-frame FaceSim plots, one PNG per video (default: no plots)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --out CSV and same-named plots (default: refuse before scoring)")
    parser.add_argument("--model", type=Path, default=Path(os.environ.get("CONSISID_MODEL", DEFAULT_MODEL)),
                        help="ConsisID model folder (its face_encoder/ holds IR-101 and models/buffalo_l/); default %(default)s")
    parser.add_argument("--eval-dir", type=Path, default=None,
                        help="folder with inception_v3_google-0cc3c7bd.pth and clip-vit-base-patch32/ "
                             "(default: models/consisid/eval next to the model folder)")
    parser.add_argument("--buffalo-l-dir", type=Path, default=None,
                        help="insightface buffalo_l folder if not in face_encoder/models/buffalo_l "
                             "(e.g. ComfyUI/models/insightface/models/buffalo_l)")
    parser.add_argument("--device", default="cpu", help="torch device for IR-101, Inception and CLIP (default cpu)")


def check_outputs(args: argparse.Namespace, job_names: list[str]) -> None:
    """--out and --plot are usable before any scoring model loads (nothing is ever replaced unasked)."""
    from ..output_paths import check_new_files, check_output_file, check_output_folder

    models = (args.model,)
    check_output_file(args.out, option="--out", overwrite=args.overwrite, suffixes=(".csv",),
                      what="the scores are a CSV table", models=models, example="scores.csv")
    if args.plot is not None:
        check_output_folder(args.plot, option="--plot", purpose="the per-frame plots (one PNG per video)",
                            models=models)
        check_new_files([args.plot / f"{name}.png" for name in job_names], option="--plot", overwrite=args.overwrite)


def write_plot(image, path: Path, overwrite: bool) -> None:
    """One RGB plot as a PNG, through a partial file."""
    import cv2

    from ..errors import ConsisIDError
    from ..output_paths import write_through_partial

    def _write(partial: Path) -> None:
        if not cv2.imwrite(str(partial), image[:, :, ::-1]):
            raise ConsisIDError(f"--plot: could not write {path}")

    write_through_partial(path, _write, overwrite=overwrite, option="--plot")


def run(args: argparse.Namespace) -> int:
    from ..metrics import load_eval_models, make_jobs, read_prompts, score_folder
    from ..metrics.plots import facesim_plot
    from ..metrics.report import summary_table, write_csv
    from ..metrics.video_io import list_videos
    from ..runtime import resolve_device
    from ..text_input import read_text_file

    resolve_device(args.device)  # e.g. cuda on a CPU-only torch: one line now, not an assertion after loading
    videos = list_videos(args.videos)
    if args.prompts:
        read_text_file(args.prompts, "--prompts")  # UTF-8 (BOM or not) or one line naming the line and byte
    prompts = read_prompts(args.prompts) if args.prompts else None
    jobs = make_jobs(videos, args.faces, prompts)
    check_outputs(args, [job.name for job in jobs])
    if prompts is not None:
        unmatched = [j.name for j in jobs if j.prompt is None]
        if unmatched:
            print(f"warning: no prompt in {args.prompts} for {len(unmatched)} video(s) (e.g. {unmatched[0]}): "
                  "their CLIPScore is left empty")
    start = time.perf_counter()
    models = load_eval_models(args.model, args.eval_dir, args.device, args.buffalo_l_dir)
    print(f"scoring models loaded in {time.perf_counter() - start:.1f}s; {len(jobs)} video(s), protocol {args.protocol}")

    def report(job, scores) -> None:
        clip = "-" if scores.clipscore is None else f"{scores.clipscore:.2f}"
        fid = "-" if scores.fid is None else f"{scores.fid:.2f}"
        print(f"{job.name}: arc {scores.facesim_arc:.3f} cur {scores.facesim_cur:.3f} clip {clip} fid {fid} "
              f"motion {scores.motion:.2f} (faces in {len(scores.face_frames)}/{len(scores.per_frame['frame_index'])} frames)")
        if args.plot is not None:
            image = facesim_plot(scores.per_frame, f"{job.name}  arc {scores.facesim_arc:.3f}  cur {scores.facesim_cur:.3f}")
            write_plot(image, args.plot / f"{job.name}.png", args.overwrite)

    results = score_folder(models, jobs, args.protocol, on_result=report)
    write_csv(args.out, results, overwrite=args.overwrite)
    print(summary_table(results))
    print(f"wrote {args.out}" + (f" and plots in {args.plot}" if args.plot else ""))
    return 0
