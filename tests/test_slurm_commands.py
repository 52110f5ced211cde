"""The sbatch command lines the slurm backend builds, checked as text."""

from llmsweep.services.slurm import SlurmBackend, merge_infrastructure, sbatch_args


def test_profile_resources_become_sbatch_flags():
    args = sbatch_args(
        {
            "slurm_partition": "gpu",
            "slurm_account": "proj42",
            "qos": "high",
            "constraint": "a100",
            "cpus_per_task": 8,
            "mem_mb": 32000,
            "gpu": 1,
            "gpu_model": "a100",
            "runtime": "2h",
            "slurm_extra": "--exclusive --comment 'llm run'",
            "tmpdir": "/tmp",
            "mem_mib": 30518,
        }
    )
    assert args == [
        "--partition=gpu",
        "--account=proj42",
        "--qos=high",
        "--constraint=a100",
        "--cpus-per-task=8",
        "--mem=32000M",
        "--gpus=a100:1",
        "--time=120",
        "--exclusive",
        "--comment",
        "llm run",
    ]


def test_gres_wins_over_gpu_and_empty_values_are_left_out():
    args = sbatch_args({"gres": "gpu:2", "gpu": 1, "slurm_account": "", "runtime": 30})
    assert args == ["--gres=gpu:2", "--time=30"]


def test_every_job_gets_a_time_limit():
    assert sbatch_args({}) == ["--time=240"]


def test_recipe_infrastructure_overrides_the_llm_and_client_jobs():
    infra = {
        "account": "p200981",
        "partition": "gpu",
        "mem_gb": 64,
        "time": "01:30:00",
        "client_partition": "cpu",
        "client_time": "2-00:00:00",
        "nodes": 1,
    }
    llm = merge_infrastructure({"slurm_partition": "x", "runtime": 5}, infra, "llm_server")
    assert llm == {
        "slurm_partition": "gpu",
        "runtime": 90,
        "slurm_account": "p200981",
        "mem_mb": 65536,
        "nodes": 1,
    }
    client = merge_infrastructure({}, infra, "client")
    assert client == {"slurm_account": "p200981", "slurm_partition": "cpu", "runtime": 2880}
    assert merge_infrastructure({"a": 1}, infra, "prometheus") == {"a": 1}
    profile = {"slurm_partition": "gpu", "gpu": 1, "gpu_model": "a100"}
    assert merge_infrastructure(profile, {"gpus": 2}, "llm_server") == {
        "slurm_partition": "gpu",
        "gres": "gpu:2",
    }
    assert merge_infrastructure({"gres": "gpu:1"}, {"gpus": 0}, "llm_server") == {}
    assert merge_infrastructure({"gres": "gpu:1"}, {"gpus": 4}, "client") == {"gres": "gpu:1"}


def test_service_argv_travels_as_arguments_never_through_a_shell(tmp_path):
    argv = ["/venv/bin/python", "-m", "llmsweep.services.wrapper", "/r/spec.json; rm -rf /"]
    backend = SlurmBackend({"slurm_partition": "cpu"}, job_name="llmsweep-demo-pushgateway")
    cmd = backend.command(argv, tmp_path / "service.log")
    assert cmd[:5] == [
        "sbatch",
        "--parsable",
        "--job-name=llmsweep-demo-pushgateway",
        f"--output={tmp_path / 'service.log'}",
        "--open-mode=append",
    ]
    assert cmd[-4:] == argv
    assert cmd[-5].endswith("slurm_job.sh")
    assert "--wrap" not in " ".join(cmd)
