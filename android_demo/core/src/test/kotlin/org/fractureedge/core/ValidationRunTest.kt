package org.fractureedge.core

import org.json.JSONObject
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test

/** Validation mode on the JVM: failures recorded, one model per report, the GPU-to-CPU fallback named. */
class ValidationRunTest {
    private val spec = Fixtures.binarySpec()
    private val gpu = RunningModel(ReportModel("fracture_fp16.tflite", "aa", "abc123", "fp16"), Accelerator.GPU, 1, null)
    private val cpu = RunningModel(ReportModel("fracture_int8.tflite", "bb", "abc123", "int8"), Accelerator.CPU, 4, "GPU failed (delegate)")
    private val cpuOnly = cpu.copy(fallback = null)
    private val device = DeviceInfo("test", "jvm", 36, "x86_64")

    /** Classifies with a constant engine; on the [failAt]-th classification the "GPU" fails and the CPU model takes over. */
    private inner class Backend(private val failAt: Int?) : ValidationBackend {
        var model = if (failAt == null) cpuOnly else gpu
        var calls = 0
        private val engine =
            object : InferenceEngine {
                override val accelerator get() = model.accelerator
                override val threads get() = model.threads

                override fun run(input: ByteArray) = byteArrayOf(if (model.accelerator == Accelerator.GPU) 200.toByte() else 100.toByte())

                override fun close() {}
            }
        private val classifier = Classifier(spec, engine)

        override fun current() = model

        override fun decode(item: LabelledImage): Pixels {
            if (item.path.endsWith(".tif")) throw UnsupportedImageException("TIFF is decoded by the server only: send it to edge serve")
            if (item.path.endsWith("broken.jpg")) throw java.io.IOException("the image could not be decoded")
            return Pixels(IntArray(16) { Fixtures.argb(it * 10, it * 10, it * 10) }, 4, 4)
        }

        override fun classify(pixels: Pixels): Classification {
            calls++
            if (calls == failAt) model = cpu // what ModelHost does after a GPU error
            return classifier.classify(pixels.argb, pixels.width, pixels.height)
        }
    }

    private val plan = ValidationPlan.fromRelativePaths(
        listOf("fractured/a.jpg", "fractured/b.tif", "not_fractured/broken.jpg", "not_fractured/c.jpg", "not_fractured/d.jpg")
    )

    @Test
    fun failuresAreRecordedNotDropped() {
        val r = ValidationRun(Backend(failAt = null)) { 0L }.run(plan, device)
        assertEquals(listOf("fractured/a.jpg", "not_fractured/c.jpg", "not_fractured/d.jpg"), r.images.map { it.path })
        assertEquals(listOf("fractured/b.tif", "not_fractured/broken.jpg"), r.failures.map { it.path })
        assertTrue(r.failures[0].error.contains("send it to edge serve"))
        val json = JSONObject(r.toJson())
        assertEquals(2, json.getJSONArray("failures").length())
        assertEquals("not_fractured", json.getJSONArray("failures").getJSONObject(1).getString("label"))
    }

    @Test
    fun aFallbackMidRunRestartsSoEveryEntryComesFromTheNamedModel() {
        val backend = Backend(failAt = 2)
        val r = ValidationRun(backend) { 0L }.run(plan, device)
        assertEquals("fracture_int8.tflite", r.model.file)
        assertEquals(Accelerator.CPU, r.accelerator)
        assertEquals(4, r.threads)
        assertEquals("GPU failed (delegate)", r.fallback)
        assertEquals("cpu", JSONObject(r.toJson()).getString("accelerator"))
        // every entry has the CPU model's output (100/256), none the GPU's (200/256)
        assertTrue(r.images.all { Math.abs(it.probabilities.getValue("fractured") - 100 / 256.0) < 1e-9 })
        assertEquals(3, r.images.size)
        assertEquals(2 + 3, backend.calls) // two on the GPU, then the whole plan again on the CPU
    }

    @Test
    fun noFallbackMeansNullInTheReport() {
        val r = ValidationRun(Backend(failAt = null)) { 0L }.run(plan, device)
        assertNull(r.fallback)
        assertTrue(JSONObject(r.toJson()).isNull("fallback"))
    }
}
