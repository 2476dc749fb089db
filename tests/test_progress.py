"""The progress line, against a fake clock: the rate starts with the first job, slow rates read per
minute, and the time left waits for enough jobs and seconds."""

from __future__ import annotations

import io

import pytest

from runner.execution.progress import ETA_MIN_JOBS, ETA_MIN_S, Progress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def progress(clock: Clock, total: int = 10) -> Progress:
    return Progress(total, stream=io.StringIO(), enabled=False, clock=clock)


def run_jobs(p: Progress, clock: Clock, n: int, seconds_each: float, ok: bool = True) -> None:
    """n jobs one after another, each taking `seconds_each`."""
    for _ in range(n):
        p.job_started()
        clock.advance(seconds_each)
        p.finished(ok=ok)


def test_no_rate_and_no_eta_before_any_job_finished(clock: Clock) -> None:
    p = progress(clock)
    clock.advance(90)  # loading the model
    assert p.line() == "0/10 | done 0 | failed 0 | retrying 0"
    p.job_started()
    clock.advance(5)
    assert p.line() == "0/10 | done 0 | failed 0 | retrying 0"


def test_model_loading_does_not_count_in_the_rate(clock: Clock) -> None:
    p = progress(clock)
    clock.advance(60)  # loading: the old rate, 1 job in 62 s, said 0.0 jobs/s
    run_jobs(p, clock, 1, 2.0)
    assert p.line() == "1/10 | done 1 | failed 0 | retrying 0 | 0.50 jobs/s"


def test_eta_waits_for_enough_jobs(clock: Clock) -> None:
    p = progress(clock)
    clock.advance(60)
    run_jobs(p, clock, ETA_MIN_JOBS - 1, 3.0)
    assert p.line() == "4/10 | done 4 | failed 0 | retrying 0 | 0.33 jobs/s"  # 12 s, but only 4 jobs
    run_jobs(p, clock, 1, 3.0)
    # 5 jobs in 15 s since the first request: 5 left at 1/3 job/s.
    assert p.line() == "5/10 | done 5 | failed 0 | retrying 0 | 0.33 jobs/s | 15s left"


def test_eta_waits_for_enough_seconds(clock: Clock) -> None:
    p = progress(clock, total=100)
    run_jobs(p, clock, 8, 1.0)
    assert p.line() == "8/100 | done 8 | failed 0 | retrying 0 | 1.0 jobs/s"  # 8 jobs, but only 8 s
    clock.advance(ETA_MIN_S - 8)
    # 8 jobs in 10 s: 0.8 jobs/s, 92 left.
    assert p.line() == "8/100 | done 8 | failed 0 | retrying 0 | 0.80 jobs/s | 1m55s left"


def test_a_slow_rate_reads_in_jobs_per_minute(clock: Clock) -> None:
    p = progress(clock, total=50)
    clock.advance(120)
    run_jobs(p, clock, 6, 25.0)
    # 6 jobs in 150 s = 0.04 jobs/s = 2.4 jobs/min; 44 left = 1100 s.
    assert p.line() == "6/50 | done 6 | failed 0 | retrying 0 | 2.4 jobs/min | 18m20s left"


@pytest.mark.parametrize(("seconds_per_job", "text"), [
    (20.0, "0.05 jobs/s"),      # at the threshold: still per second
    (20.5, "2.9 jobs/min"),     # just below it
    (300.0, "0.2 jobs/min"),
    (0.4, "2.5 jobs/s"),
    (1.0, "1.0 jobs/s"),
    (1.25, "0.80 jobs/s"),
])
def test_rate_units(clock: Clock, seconds_per_job: float, text: str) -> None:
    p = progress(clock, total=1)
    run_jobs(p, clock, 1, seconds_per_job)
    assert p.line() == f"1/1 | done 1 | failed 0 | retrying 0 | {text}"


def test_concurrent_jobs_finishing_together_do_not_inflate_the_rate(clock: Clock) -> None:
    # 4 workers, 20 s per job: the true rate is 0.2 jobs/s. Measured from the first request, the
    # first batch of 4 reads 4 jobs in 20 s, not 3 jobs in no time at all.
    p = progress(clock, total=40)
    clock.advance(30)
    for _ in range(4):
        p.job_started()
    clock.advance(20)
    for _ in range(4):
        p.finished(ok=True)
    assert p.line() == "4/40 | done 4 | failed 0 | retrying 0 | 0.20 jobs/s"
    for _ in range(4):
        p.job_started()
    clock.advance(20)
    for _ in range(4):
        p.finished(ok=True)
    assert p.line() == "8/40 | done 8 | failed 0 | retrying 0 | 0.20 jobs/s | 2m40s left"


def test_without_job_started_the_rate_starts_at_the_first_end(clock: Clock) -> None:
    p = progress(clock)
    clock.advance(60)
    p.finished(ok=True)
    assert p.line() == "1/10 | done 1 | failed 0 | retrying 0"  # one end, no interval yet
    clock.advance(4)
    p.finished(ok=True)
    assert p.line() == "2/10 | done 2 | failed 0 | retrying 0 | 0.25 jobs/s"


def test_failed_and_resumed_jobs(clock: Clock) -> None:
    p = progress(clock, total=20)
    p.skip(10)
    run_jobs(p, clock, 4, 2.0)
    run_jobs(p, clock, 1, 2.0, ok=False)
    p.retrying = 1
    assert p.line() == "15/20 | done 4 | failed 1 | retrying 1 | resumed 10 | 0.50 jobs/s | 10s left"


def test_label_and_the_end(clock: Clock) -> None:
    p = progress(clock, total=5)
    p.set_label("smollm2-135m Q8_0")
    run_jobs(p, clock, 5, 3.0)
    assert p.line() == "[smollm2-135m Q8_0] 5/5 | done 5 | failed 0 | retrying 0 | 0.33 jobs/s"  # nothing left


def test_log_lines_come_every_few_seconds_on_the_clock(clock: Clock) -> None:
    stream = io.StringIO()
    p = Progress(3, stream=stream, clock=clock, log_every_s=5.0)
    assert not p.tty
    run_jobs(p, clock, 1, 1.0)  # first draw: printed
    run_jobs(p, clock, 1, 1.0)  # 1 s later: not yet
    clock.advance(4)
    run_jobs(p, clock, 1, 1.0)  # 6 s after the first: printed
    p.close()
    assert stream.getvalue().splitlines() == [
        "1/3 | done 1 | failed 0 | retrying 0 | 1.0 jobs/s",
        "3/3 | done 3 | failed 0 | retrying 0 | 0.43 jobs/s",
        "3/3 | done 3 | failed 0 | retrying 0 | 0.43 jobs/s",
    ]


def test_a_second_run_seen_by_the_same_subscriber_counts_from_zero(clock: Clock) -> None:
    # An investigation's steps are several runs with one progress line: the second step's line once
    # read "80/8 | done 80" (the first step's 80 carried on).
    from runner.execution.events import JobFinished, RunStarted
    from runner.execution.progress import ProgressSubscriber

    p = progress(clock, 3)
    subscriber = ProgressSubscriber(p)
    subscriber(RunStarted(run_id=1, planned=3, resumed=0))
    for n in range(3):
        subscriber(JobFinished(f"a{n}", "m", f"i{n}", 0, ok=n != 1, attempts=1, latency_s=0.1))
    subscriber(RunStarted(run_id=2, planned=2, resumed=1))
    subscriber(JobFinished("b0", "m", "i0", 0, ok=True, attempts=1, latency_s=0.1))
    assert p.line() == "2/2 | done 1 | failed 0 | retrying 0 | resumed 1"
