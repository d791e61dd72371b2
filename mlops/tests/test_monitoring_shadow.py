"""Shadow comparisons: boxes matched one to one by class and IoU, labels and probabilities compared."""

from __future__ import annotations

import pytest

from mlops.monitoring.shadow import (
    box_iou,
    class_probabilities,
    compare_classifications,
    compare_detections,
    compare_tabular,
    label_of,
    match_boxes,
)


def box(xyxy, confidence, class_name="cat"):
    return {"xyxy": list(xyxy), "class_name": class_name, "class_id": 0, "confidence": confidence}


def test_iou_of_boxes():
    assert box_iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert box_iou([0, 0, 10, 10], [10, 10, 20, 20]) == 0.0
    assert box_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    # Inverted corners (barely trained heads emit them) describe the same box.
    assert box_iou([10, 10, 0, 0], [0, 0, 10, 10]) == 1.0
    assert box_iou([0, 0, 0, 10], [0, 0, 0, 10]) == 0.0  # no area


def test_identical_answers_agree_fully():
    boxes = [box([0, 0, 10, 10], 0.9), box([20, 20, 40, 40], 0.5, "dog")]
    result = compare_detections(boxes, list(reversed(boxes)))
    assert result["matched"] == 2 and result["compared"] == 2
    assert result["match_share"] == 1.0
    assert result["mean_confidence_delta"] == 0.0 and result["mean_abs_confidence_delta"] == 0.0
    assert result["mean_iou"] == 1.0


def test_two_empty_answers_agree_and_one_empty_answer_does_not():
    assert compare_detections([], [])["match_share"] == 1.0
    assert compare_detections([], [])["mean_confidence_delta"] is None
    missed = compare_detections([box([0, 0, 10, 10], 0.9)], [])
    assert missed["match_share"] == 0.0 and missed["compared"] == 1 and missed["mean_iou"] is None
    extra = compare_detections([], [box([0, 0, 10, 10], 0.9)])
    assert extra["match_share"] == 0.0 and extra["shadow_boxes"] == 1


def test_boxes_match_only_within_their_class_and_above_the_iou():
    production = [box([0, 0, 10, 10], 0.9, "cat"), box([50, 50, 60, 60], 0.8, "cat")]
    shadow = [
        box([0, 0, 10, 10], 0.7, "dog"),  # same place, other class
        box([55, 50, 65, 60], 0.6, "cat"),  # IoU 1/3 with the second box: below 0.5
    ]
    assert compare_detections(production, shadow)["matched"] == 0
    assert compare_detections(production, shadow, iou=0.3)["matched"] == 1


def test_extra_and_missing_boxes_lower_the_share_over_the_larger_count():
    production = [box([0, 0, 10, 10], 0.9), box([20, 0, 30, 10], 0.8)]
    shadow = [box([0, 0, 10, 11], 0.7), box([20, 0, 30, 10], 0.9), box([40, 0, 50, 10], 0.4), box([60, 0, 70, 10], 0.4)]
    result = compare_detections(production, shadow)
    assert (result["matched"], result["compared"]) == (2, 4)
    assert result["match_share"] == 0.5
    assert result["mean_confidence_delta"] == pytest.approx(((0.7 - 0.9) + (0.9 - 0.8)) / 2)
    assert result["mean_abs_confidence_delta"] == pytest.approx((0.2 + 0.1) / 2)


def test_greedy_matching_gives_each_shadow_box_once_to_the_most_confident_production_box():
    # Two production boxes overlap the same shadow box; the more confident one gets it.
    production = [box([0, 0, 10, 10], 0.4), box([1, 0, 11, 10], 0.9)]
    shadow = [box([0, 0, 10, 10], 0.8)]
    pairs = match_boxes(production, shadow)
    assert [(p, s) for p, s, _ in pairs] == [(1, 0)]
    # Among candidates, the box it overlaps most wins, not the first listed.
    shadow = [box([3, 0, 13, 10], 0.8), box([1, 0, 11, 10], 0.8)]
    assert [(p, s) for p, s, _ in match_boxes([box([1, 0, 11, 10], 0.9)], shadow)] == [(0, 1)]


def test_class_ids_are_used_when_boxes_have_no_names():
    production = [{"xyxy": [0, 0, 10, 10], "class_id": 1, "confidence": 0.5}]
    assert compare_detections(production, [{"xyxy": [0, 0, 10, 10], "class_id": 1, "confidence": 0.5}])["matched"] == 1
    assert compare_detections(production, [{"xyxy": [0, 0, 10, 10], "class_id": 2, "confidence": 0.5}])["matched"] == 0


def test_an_iou_threshold_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError):
        compare_detections([], [], iou=0.0)


def test_tabular_agreement_and_probability_deltas():
    production = [{"a": 0.9, "b": 0.1}, {"a": 0.4, "b": 0.6}, {"a": 0.5, "b": 0.5}]
    shadow = [{"a": 0.7, "b": 0.3}, {"a": 0.6, "b": 0.4}, {"a": 0.5, "b": 0.5}]
    result = compare_tabular(production, shadow)
    assert result["records"] == 3 and result["agreeing"] == 2
    assert result["label_agreement"] == pytest.approx(2 / 3)
    assert result["mean_probability_delta"] == pytest.approx((0.2 + 0.2 + 0.0) / 3)
    # On the class production chose: a 0.9 -> 0.7, b 0.6 -> 0.4, a 0.5 -> 0.5.
    assert result["mean_label_probability_delta"] == pytest.approx((-0.2 - 0.2 + 0.0) / 3)


def test_a_tie_goes_to_the_first_class_and_unknown_classes_count_as_zero():
    assert label_of({"a": 0.5, "b": 0.5}) == "a"
    result = compare_tabular([{"a": 0.6, "b": 0.4}], [{"a": 0.6, "c": 0.4}])
    assert result["agreeing"] == 1
    assert result["mean_probability_delta"] == pytest.approx((0.0 + 0.4 + 0.4) / 3)


def test_tabular_inputs_of_different_lengths_are_refused_and_nothing_compares_to_none():
    with pytest.raises(ValueError):
        compare_tabular([{"a": 1.0}], [])
    empty = compare_tabular([], [])
    assert empty["records"] == 0 and empty["label_agreement"] is None and empty["mean_probability_delta"] is None


def test_classifiers_are_compared_on_the_top1_class_and_by_class_name():
    production = class_probabilities(["cat", "dog", "bird"], [0.7, 0.2, 0.1])
    # The staging version lists its classes in another order: they are matched by name, not position.
    shadow = class_probabilities(["bird", "cat", "dog"], [0.1, 0.5, 0.4])
    result = compare_classifications(production, shadow)
    assert result["agreeing"] and (result["production_class"], result["shadow_class"]) == ("cat", "cat")
    assert (result["production_probability"], result["shadow_probability"]) == (0.7, 0.5)
    assert result["mean_probability_delta"] == pytest.approx((0.2 + 0.2 + 0.0) / 3)
    assert result["top1_probability_delta"] == pytest.approx(0.5 - 0.7)

    changed = compare_classifications(production, {"cat": 0.3, "dog": 0.6, "bird": 0.1})
    assert not changed["agreeing"] and changed["shadow_class"] == "dog"
    # A class only the staging version knows counts as probability 0 for production.
    new_class = compare_classifications({"cat": 0.6, "dog": 0.4}, {"cat": 0.6, "fox": 0.4})
    assert new_class["agreeing"] and new_class["mean_probability_delta"] == pytest.approx((0.0 + 0.4 + 0.4) / 3)


def test_a_probability_vector_must_have_one_value_per_class():
    with pytest.raises(ValueError):
        class_probabilities(["cat", "dog"], [1.0])
