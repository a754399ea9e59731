"""Progressive structured pruning during `keras.distillation.Distiller`:
the student is wrapped with `structure="channel"`, the callback finds its
wrappers inside the Distiller and raises the fraction while it distills,
and `kp.shrink` gives the small model of the student's own class."""

import keras
import numpy as np
import pytest

import keras_progprune as kp
from keras_progprune import wrapper as wrapper_lib

pytest.importorskip("keras_hub")

from hub_families import causal_lm  # noqa: E402
from hub_families import token_batch  # noqa: E402

STEPS = 8


def _distiller(teacher, student):
    distiller = keras.distillation.Distiller(
        teacher=teacher, student=student,
        distillation_losses=keras.distillation.LogitsDistillation(
            temperature=2.0, loss=keras.losses.KLDivergence()),
        student_loss_weight=0.5)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return distiller


@pytest.mark.parametrize("importance", ["magnitude", "activation"])
def test_progressive_width_during_distillation_shrinks_to_the_one_shot_size(importance):
    keras.utils.set_random_seed(0)
    teacher = causal_lm("Llama3", num_query_heads=8, num_key_value_heads=2,
                        intermediate_dim=16)
    x = token_batch(teacher, batch=8, length=8)
    y = np.roll(x["token_ids"], -1, axis=1)
    student = kp.prune_low_magnitude(
        teacher, kp.PolynomialDecay(0.0, 0.5, 0, STEPS // 2, frequency=2),
        structure="channel")
    assert type(student) is type(teacher)
    score = (None if importance == "magnitude"
             else kp.importance.Activation([x]))
    callback = kp.ProgressivePruningCallback(importance=score)
    distiller = _distiller(teacher, student)
    before = {v.path: np.array(v.numpy()) for v in teacher.weights}
    history = distiller.fit(x, y, batch_size=2, epochs=STEPS // 4, verbose=0,
                            callbacks=[callback]).history
    assert history["sparsity"][-1] > 0.4
    assert np.all(np.isfinite(history["loss"]))
    # The teacher is frozen and was never wrapped.
    assert not wrapper_lib.collect_wrappers(teacher)
    for v in teacher.weights:
        np.testing.assert_array_equal(v.numpy(), before[v.path])

    small = kp.shrink(distiller.student)
    one_shot = kp.prune_width(teacher, ffn=0.5, heads=0.5, importance="magnitude")
    assert type(small) is type(one_shot)
    assert small.count_params() == one_shot.count_params() < 0.8 * teacher.count_params()
    # What was distilled is what is kept: the masked student's logits.
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(small(x)),
        keras.ops.convert_to_numpy(kp.strip_pruning(distiller.student)(x)),
        rtol=1e-4, atol=1e-5)
    prompt = token_batch(small, batch=1, length=6)
    prompt["padding_mask"][:, 3:] = 0
    out = small.generate(prompt, stop_token_ids=None)
    assert np.asarray(out["padding_mask"]).all()  # the three free places filled


def test_a_student_pruned_from_a_teacher_that_a_distiller_froze_is_said_to_be_frozen():
    keras.utils.set_random_seed(0)
    teacher = causal_lm("Llama3")
    x = token_batch(teacher, batch=2, length=8)
    _distiller(teacher, kp.prune_width(teacher, ffn=0.5, data=[x]))  # freezes the teacher
    message = (r"Model '.*' has no trainable weights \(a `keras.distillation.Distiller` "
               r"freezes its teacher\), and the model that `{}` returns keeps each layer's "
               r"`trainable`: it would train nothing\. Set `model.trainable = True` on the "
               r"result before training it\.")
    with pytest.warns(UserWarning, match=message.format("prune_width")):
        student = kp.prune_width(teacher, ffn=0.5, data=[x])
    assert not student.trainable_weights
    student.trainable = True
    assert student.trainable_weights
    with pytest.warns(UserWarning, match=message.format("prune_depth")):
        kp.prune_depth(teacher, 1, data=[x])
    with pytest.warns(UserWarning, match=message.format("prune_low_magnitude")):
        kp.prune_low_magnitude(teacher)


def test_a_wrapped_teacher_is_refused_with_the_fix():
    keras.utils.set_random_seed(0)
    teacher = causal_lm("Llama3")
    wrapped = kp.prune_low_magnitude(teacher, structure="channel")
    x = token_batch(teacher, batch=4, length=8)
    distiller = _distiller(wrapped, kp.prune_low_magnitude(teacher, structure="channel"))
    with pytest.raises(ValueError, match="teacher"):
        distiller.fit(x, x["token_ids"], epochs=1, verbose=0,
                      callbacks=[kp.ProgressivePruningCallback()])
