package org.fractureedge.core

import java.nio.ByteBuffer
import java.nio.ByteOrder

data class LabelScore(val label: String, val probability: Double)

/**
 * One classification. [probabilities] keeps the spec's label order. For binary models
 * [positiveProbability] and [decision] are set; for multiclass [decision] is null.
 */
data class Prediction(
    val label: String,
    val probabilities: Map<String, Double>,
    val topK: List<LabelScore>,
    val positiveProbability: Double?,
    val threshold: Double?,
    val decision: Boolean?
)

/**
 * Reads the interpreter's raw output (dequantising int outputs) and makes the decision.
 * The model already applied its sigmoid or softmax: the dequantised output is the probability.
 */
class Postprocessor(private val spec: ModelSpec) {
    fun fromRaw(raw: ByteArray, order: ByteOrder = ByteOrder.nativeOrder()): Prediction {
        val out = spec.output
        if (raw.size != out.byteCount) {
            throw SpecException("model output has ${raw.size} bytes, the spec expects ${out.byteCount} (${out.shape} ${out.dtype.wire})")
        }
        val values =
            when (out.dtype) {
                DType.FLOAT32 -> {
                    val fb = ByteBuffer.wrap(raw).order(order).asFloatBuffer()
                    DoubleArray(out.elementCount) { fb.get(it).toDouble() }
                }

                DType.UINT8 -> DoubleArray(raw.size) { dequantize(raw[it].toInt() and 0xFF) }

                DType.INT8 -> DoubleArray(raw.size) { dequantize(raw[it].toInt()) }
            }
        return fromProbabilities(values)
    }

    private fun dequantize(q: Int): Double = (q - spec.output.zeroPoint) * spec.output.scale

    /** [p] is the model output as probabilities: one value (binary) or one per label. */
    fun fromProbabilities(p: DoubleArray, k: Int = spec.labels.size): Prediction = when (spec.task) {
        Task.BINARY -> binary(p)
        Task.MULTICLASS -> multiclass(p, k)
    }

    private fun binary(p: DoubleArray): Prediction {
        require(p.size == 1) { "a binary model has one output, got ${p.size}" }
        val pos = spec.positiveLabel!!
        val neg = spec.negativeLabel!!
        val pPos = p[0]
        val probs = LinkedHashMap<String, Double>()
        for (label in spec.labels) probs[label] = if (label == pos) pPos else 1.0 - pPos
        val decision = pPos >= spec.threshold
        return Prediction(
            label = if (decision) pos else neg,
            probabilities = probs,
            topK = topK(probs, 2),
            positiveProbability = pPos,
            threshold = spec.threshold,
            decision = decision
        )
    }

    private fun multiclass(p: DoubleArray, k: Int): Prediction {
        require(p.size == spec.labels.size) { "expected ${spec.labels.size} outputs, got ${p.size}" }
        val probs = LinkedHashMap<String, Double>()
        spec.labels.forEachIndexed { i, label -> probs[label] = p[i] }
        val top = topK(probs, k)
        return Prediction(
            label = top.first().label,
            probabilities = probs,
            topK = top,
            positiveProbability = null,
            threshold = null,
            decision = null
        )
    }

    companion object {
        /** Highest first; ties keep label order, so argmax is the first maximal label. */
        fun topK(probabilities: Map<String, Double>, k: Int): List<LabelScore> = probabilities.entries
            .mapIndexed { i, e -> Triple(i, e.key, e.value) }
            .sortedWith(compareByDescending<Triple<Int, String, Double>> { it.third }.thenBy { it.first })
            .take(k.coerceAtLeast(1))
            .map { LabelScore(it.second, it.third) }
    }
}
