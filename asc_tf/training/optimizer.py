"""TorchAdamW: AdamW with torch.optim.AdamW's arithmetic (epsilon added to the bias-corrected sqrt(v))."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="asc_tf")
class TorchAdamW(keras.optimizers.AdamW):
    """`p *= 1 - lr*wd`, then `p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)`, as torch (no amsgrad).

    Keras's Adam adds epsilon to sqrt(v) before the bias correction ("epsilon hat"), i.e. an effective
    epsilon 1/sqrt(bc2) times larger (32x at step 1): parameters with gradients near 1e-7 move differently.
    """

    def update_step(self, gradient, variable, learning_rate):  # noqa: ANN001 (Keras signature)
        if self.amsgrad:
            raise NotImplementedError("TorchAdamW does not implement amsgrad")
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        # bias corrections in float64 as torch's Python floats (ops.cast(0.999) would round through float32)
        step = ops.cast(self.iterations + 1, "float64")
        bc1 = ops.cast(1 - ops.power(ops.convert_to_tensor(self.beta_1, "float64"), step), variable.dtype)
        bc2 = ops.cast(1 - ops.power(ops.convert_to_tensor(self.beta_2, "float64"), step), variable.dtype)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        denom = ops.add(ops.divide(ops.sqrt(v), ops.sqrt(bc2)), self.epsilon)
        self.assign_sub(variable, ops.divide(ops.multiply(m, lr / bc1), denom))
