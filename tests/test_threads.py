"""CPU threads per process (impartial_core.threads) and the CellProfiler Analysis workers it shares
the CPUs among (impartial_cellprofiler.groups.analysis_workers)."""
import subprocess
import sys

import pytest

from impartial_core import threads


def _cgroup_v1(tmp_path, quotas):
    """A fake cgroup v1 tree: ``quotas`` maps a cgroup path ("" for the root) to its quota in us."""
    root = tmp_path / "cgroup"
    for path, quota in quotas.items():
        folder = root.joinpath("cpu", *[p for p in path.split("/") if p])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "cpu.cfs_quota_us").write_text(str(quota))
        (folder / "cpu.cfs_period_us").write_text("100000")
    return root


def test_cgroup_quotas_v1_and_v2(tmp_path):
    proc = tmp_path / "proc_cgroup"
    proc.write_text("4:memory:/x\n1:cpu:/jobs/job7\n0::/\n")
    root = _cgroup_v1(tmp_path, {"": -1, "jobs": 300000, "jobs/job7": -1})
    assert threads.cgroup_cpu_quota(root, proc) == 3.0  # the parent's quota limits the job
    root = _cgroup_v1(tmp_path / "b", {"": -1, "jobs": 300000, "jobs/job7": 150000})
    assert threads.cgroup_cpu_quota(root, proc) == 1.5
    assert threads.cgroup_cpu_quota(_cgroup_v1(tmp_path / "c", {"": -1}), proc) is None
    v2 = tmp_path / "v2"
    (v2 / "user.slice").mkdir(parents=True)
    (v2 / "cpu.max").write_text("max 100000\n")
    (v2 / "user.slice" / "cpu.max").write_text("50000 100000\n")
    proc.write_text("0::/user.slice\n")
    assert threads.cgroup_cpu_quota(v2, proc) == 0.5
    assert threads.cgroup_cpu_quota(v2, tmp_path / "absent") is None


def test_default_threads_follow_environment_quota_and_workers(monkeypatch):
    for variable in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(threads, "affinity_cpus", lambda: 8)
    monkeypatch.setattr(threads, "cgroup_cpu_quota", lambda: None)
    assert threads.default_threads() == 8 and threads.default_threads(workers=3) == 2
    assert threads.default_threads(workers=16) == 1
    monkeypatch.setattr(threads, "cgroup_cpu_quota", lambda: 1.5)
    assert threads.available_cpus() == 2 and threads.default_threads() == 2
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    assert threads.default_threads(workers=2) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads.default_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")
    assert threads.default_threads() == 3


def test_fixed_work_trains_on_fixed_threads():
    """A training that must give the same model everywhere runs on REPRODUCIBLE_THREADS threads, not on
    what the machine offers; the user's own number wins."""
    assert threads.training_threads(None, fixed_work=True) == threads.REPRODUCIBLE_THREADS == 2
    assert threads.training_threads(3, fixed_work=True) == 3
    assert threads.training_threads(None, fixed_work=False) is None


def test_use_threads_sets_torch(monkeypatch):
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        assert threads.use_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert threads.use_threads() == 2 and torch.get_num_threads() == 2
        with pytest.raises(ValueError, match="at least 1"):
            threads.use_threads(0)
    finally:
        torch.set_num_threads(before)


def test_analysis_workers_counts_the_siblings_of_one_analysis():
    """Worker processes started by one parent with the same --analysis-id count; others do not."""
    pytest.importorskip("psutil")
    from impartial_cellprofiler.groups import analysis_workers

    assert analysis_workers(["cellprofiler", "-c", "-r"]) == 1
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    others = [subprocess.Popen(sleep + ["--analysis-id", analysis]) for analysis in ("A", "A", "B")]
    try:
        probe = ("import sys; from impartial_cellprofiler.groups import analysis_workers; "
                 "print(analysis_workers(sys.argv))")
        out = subprocess.run([sys.executable, "-c", probe, "--analysis-id", "A"], capture_output=True, text=True,
                             check=True, cwd=str(threads.Path(__file__).resolve().parents[1]))
        assert out.stdout.strip() == "3"  # the two sleeping "A" workers and the probe itself
    finally:
        for process in others:
            process.kill()
