package org.fractureedge.core

import kotlin.math.abs

/** What the interpreter reports about one tensor (filled from LiteRT's Tensor on Android). */
data class TensorInfo(val shape: List<Int>, val dtype: String, val scale: Double, val zeroPoint: Int)

/** Compares the loaded model's tensors with its spec, so a mismatched pair is refused with a clear message. */
object TensorCheck {
    /** Empty when they match; otherwise one line per problem. */
    fun problems(spec: ModelSpec, input: TensorInfo, output: TensorInfo): List<String> =
        check("input", spec.input, input) + check("output", spec.output, output)

    fun requireMatch(spec: ModelSpec, input: TensorInfo, output: TensorInfo) {
        val p = problems(spec, input, output)
        if (p.isNotEmpty()) throw SpecException("the model file does not match its spec: " + p.joinToString("; "))
    }

    private fun check(name: String, want: TensorSpec, got: TensorInfo): List<String> {
        val out = mutableListOf<String>()
        if (got.shape != want.shape) out += "$name shape is ${got.shape}, spec says ${want.shape}"
        if (got.dtype.lowercase() != want.dtype.wire) out += "$name dtype is ${got.dtype}, spec says ${want.dtype.wire}"
        if (want.dtype.isQuantized && got.dtype.lowercase() == want.dtype.wire) {
            if (abs(got.scale - want.scale) > 1e-6 * want.scale) out += "$name scale is ${got.scale}, spec says ${want.scale}"
            if (got.zeroPoint != want.zeroPoint) out += "$name zero_point is ${got.zeroPoint}, spec says ${want.zeroPoint}"
        }
        return out
    }
}
