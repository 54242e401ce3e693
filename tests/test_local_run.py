"""kfedge run's driver around kfp.local: progress filtering and what it restores."""

from __future__ import annotations

import builtins
import io
from pathlib import Path

import pytest

from kfedge.errors import KfedgeError
from kfedge.local_run import ProgressStream


def test_print_is_restored_even_when_kfp_local_leaks_its_indenting_print(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    """kfp.local swaps builtins.print per task; parallel loop iterations can leave it swapped."""
    import kfedge.pipelines.edge as edge
    from kfedge.local_run import run_local

    original = builtins.print

    def leaky_pipeline(**_: object) -> None:
        builtins.print = lambda *a, **k: original("    ", *a, **k)  # what a leaked swap does

    monkeypatch.setattr(edge, "edge_optimize", leaky_pipeline)
    with pytest.raises(KfedgeError, match="finished without a report"):
        run_local(techniques="ptq-int8", deploy=False, output_dir=tmp_path, quiet=True)
    assert builtins.print is original


def test_progress_stream_shows_steps_epochs_and_errors_only():
    log, term = io.StringIO(), io.StringIO()
    stream = ProgressStream(log, term)
    stream.write("07:00:00.000 - INFO - Executing task \x1b[96m'optimize'\x1b[0m\n")
    stream.write('    {"inputs": {"parameterValues": {}}}\n')
    stream.write("    [kfedge] fine-tune: epoch 1/2 loss=0.1\n")
    stream.write("    kfedge.errors.ConfigError: sparsity must be < 1\n")
    stream.write("07:00:01.000 - ERROR - Task 'optimize' finished with status FAILURE\n")
    shown = term.getvalue()
    assert "start  optimize" in shown and "failure optimize" in shown
    assert "fine-tune: epoch 1/2" in shown
    assert "parameterValues" not in shown  # kfp.local's executor dumps go to the log only
    assert "parameterValues" in log.getvalue()
    assert stream.failed == ["optimize"]
    assert stream.error_lines == ["ConfigError: sparsity must be < 1"]


def test_a_finished_runs_stream_drops_what_stale_handlers_write():
    """kfp.local makes a logging.StreamHandler on the sys.stdout of its run (ours); a later run
    in the same process may log through it after that run's log file is closed: the write is
    dropped, not raised (a "I/O operation on closed file" would become the later run's error)."""
    import logging

    log, term = io.StringIO(), io.StringIO()
    stream = ProgressStream(log, term)
    handler = logging.StreamHandler(stream)
    log.close()
    assert stream.write("07:00:00.000 - INFO - Executing task 'x'\n") > 0
    stream.flush()
    record = logging.LogRecord("kfp", logging.INFO, __file__, 1, "late line", None, None)
    handler.emit(record)  # logging would print "--- Logging error ---" on a raise
    assert stream.error_lines == []
