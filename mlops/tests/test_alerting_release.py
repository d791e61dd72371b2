"""Judging a release against its predecessor's own baseline."""

from mlops.alerting.release import ReleaseLimits, Traffic, judge_release

LIMITS = ReleaseLimits(min_requests=10, error_rate_margin=0.05, latency_ratio=2.0)


def test_too_little_traffic_is_not_judged():
    verdict = judge_release(Traffic(100, 0, 50.0), Traffic(5, 4, 500.0), LIMITS)
    assert not verdict.judged and not verdict.breached


def test_errors_are_judged_against_the_previous_versions_own_rate():
    noisy_baseline = Traffic(90, 10, 50.0)  # the old version already failed 10%
    assert not judge_release(noisy_baseline, Traffic(87, 13, 50.0), LIMITS).breached  # 13% <= 10% + 5%
    verdict = judge_release(noisy_baseline, Traffic(80, 20, 50.0), LIMITS)
    assert verdict.breached and "error rate 20.0%" in verdict.reasons[0]
    assert judge_release(Traffic(0, 0), Traffic(0, 12), LIMITS).breached  # no baseline: 0% + margin


def test_latency_is_judged_as_a_ratio_of_the_previous_p95():
    assert not judge_release(Traffic(100, 0, 40.0), Traffic(50, 0, 80.0), LIMITS).breached
    verdict = judge_release(Traffic(100, 0, 40.0), Traffic(50, 0, 81.0), LIMITS)
    assert verdict.breached and verdict.reasons == ["latency p95 81 ms, above 2 x the previous version's 40 ms"]
    assert not judge_release(Traffic(0, 0, None), Traffic(50, 0, 900.0), LIMITS).breached  # no baseline latency


def test_latency_can_be_left_unjudged():
    warming = ReleaseLimits(min_requests=10, latency_ratio=None)
    assert not judge_release(Traffic(100, 0, 40.0), Traffic(50, 0, 4000.0), warming).breached
    assert judge_release(Traffic(100, 0, 40.0), Traffic(40, 10, 4000.0), warming).breached  # errors still count
