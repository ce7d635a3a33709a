package org.fractureedge.core

import java.io.Closeable
import java.nio.ByteOrder

/** The interpreter behind an interface: raw input bytes in, raw output bytes out (app: LiteRT). */
interface InferenceEngine : Closeable {
    val accelerator: Accelerator
    val threads: Int

    /** Byte order of float tensors (LiteRT uses the platform's native order). */
    val byteOrder: ByteOrder get() = ByteOrder.nativeOrder()

    fun run(input: ByteArray): ByteArray
}

data class Classification(
    val prediction: Prediction,
    /** Interpreter time only. */
    val inferenceMs: Double,
    /** Preprocessing + interpreter + postprocessing. */
    val totalMs: Double,
    val accelerator: Accelerator
)

/** Preprocess -> engine -> postprocess for one spec. Not thread-safe: use one thread (the model dispatcher). */
class Classifier(val spec: ModelSpec, private val engine: InferenceEngine, private val clock: () -> Long = System::nanoTime) : Closeable {
    private val pre = Preprocessor(spec)
    private val post = Postprocessor(spec)

    val accelerator: Accelerator get() = engine.accelerator
    val threads: Int get() = engine.threads

    fun classify(argb: IntArray, width: Int, height: Int): Classification = classify(Pixels(argb, width, height))

    /** Uses [Pixels.grey] when present (DICOM), else the ARGB pixels. */
    fun classify(pixels: Pixels): Classification {
        val t0 = clock()
        val input =
            pixels.grey?.let { pre.prepareGrey(it, pixels.width, pixels.height, engine.byteOrder) }
                ?: pre.prepare(pixels.argb, pixels.width, pixels.height, engine.byteOrder)
        val t1 = clock()
        val raw = engine.run(input.tensorBytes)
        val t2 = clock()
        val prediction = post.fromRaw(raw, engine.byteOrder)
        val t3 = clock()
        return Classification(prediction, (t2 - t1) / 1e6, (t3 - t0) / 1e6, engine.accelerator)
    }

    override fun close() = engine.close()
}
