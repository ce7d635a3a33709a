package org.fractureedge.core

import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import kotlin.math.abs
import org.json.JSONArray
import org.json.JSONObject
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

/**
 * The Kotlin half of the device-report round trip that .ci/android.sh runs: validation mode over
 * a labelled folder (EDGE_ROUNDTRIP_DATA), writing EDGE_DEVICE_REPORT_OUT for `edge validate
 * --device-report`. The JVM has no BitmapFactory and no LiteRT, so the pixels are the ARGB
 * Python decoded (the parity vectors of the same files) and the engine replays the raw output
 * LiteRT gave for the same input, after checking the Kotlin input tensor matches Python's.
 * Everything between (format check, preprocessing, postprocessing, failures, JSON) is the app's code.
 */
class DeviceReportRoundTripTest {
    private class Case(val dir: File, val json: JSONObject) {
        fun bytes(key: String): ByteArray = File(dir, json.getString(key)).readBytes()
    }

    private class Replay(private val spec: ModelSpec) : InferenceEngine {
        var case: Case? = null
        override val accelerator = Accelerator.CPU
        override val threads = 2
        override val byteOrder: ByteOrder = ByteOrder.LITTLE_ENDIAN

        override fun run(input: ByteArray): ByteArray {
            val c = checkNotNull(case)
            val want = c.bytes(if (spec.input.dtype.isQuantized) "input_q" else "input_f32")
            assertEquals("input tensor size", want.size, input.size)
            if (spec.input.dtype.isQuantized) {
                val signed = spec.input.dtype == DType.INT8
                for (i in want.indices) {
                    val a = if (signed) want[i].toInt() else want[i].toInt() and 0xFF
                    val b = if (signed) input[i].toInt() else input[i].toInt() and 0xFF
                    if (abs(a - b) > 1) throw AssertionError("${c.json.getString("name")}: input [$i] $b vs $a")
                }
            } else {
                val w = ByteBuffer.wrap(want).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer()
                val g = ByteBuffer.wrap(input).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer()
                for (i in 0 until w.remaining()) if (abs(w.get(i) - g.get(i)) > 1e-5f) throw AssertionError("input [$i]")
            }
            return c.bytes("output_raw")
        }

        override fun close() {}
    }

    @Test
    fun kotlinWritesTheReportForTheParityImages() {
        val data = File(TestEnv.require("EDGE_ROUNDTRIP_DATA", "EDGE_SKIP_ROUNDTRIP"))
        val vectors = File(TestEnv.require("EDGE_VECTORS_DIR", "EDGE_SKIP_ROUNDTRIP"))
        val out = File(TestEnv.require("EDGE_DEVICE_REPORT_OUT", "EDGE_SKIP_ROUNDTRIP"))
        val manifestText = File(vectors, "manifest.json").readText().trim()
        val manifest = if (manifestText.startsWith("[")) JSONArray(manifestText).getJSONObject(0) else JSONObject(manifestText)
        val spec = ModelSpec.fromJson(manifest.getJSONObject("spec"))
        val cases = manifest.getJSONArray("cases").let { a -> (0 until a.length()).map { Case(vectors, a.getJSONObject(it)) } }
        val byName = cases.associateBy { it.json.getString("name") }
        val engine = Replay(spec)
        val classifier = Classifier(spec, engine)
        val running = RunningModel(
            ReportModel(manifest.getString("model_file"), manifest.getString("model_sha256"), spec.bundleSha256, spec.precision),
            Accelerator.CPU,
            2,
            null
        )
        val backend =
            object : ValidationBackend {
                override fun current() = running

                override fun decode(item: LabelledImage): Pixels {
                    val head = File(data, item.path).inputStream().use { it.readNBytes(ImageFormats.HEADER_BYTES) }
                    ImageFormats.requirePhoneDecodable(head)
                    val c = byName[File(item.path).nameWithoutExtension] ?: error("no parity vector for ${item.path}")
                    engine.case = c
                    val w = c.json.getInt("width")
                    val h = c.json.getInt("height")
                    val argb = IntArray(w * h)
                    ByteBuffer.wrap(c.bytes("argb")).order(ByteOrder.LITTLE_ENDIAN).asIntBuffer().get(argb)
                    return Pixels(argb, w, h)
                }

                override fun classify(pixels: Pixels) = classifier.classify(pixels.argb, pixels.width, pixels.height)
            }
        val files = data.walkTopDown().filter { it.isFile }.map { it.relativeTo(data).invariantSeparatorsPath }.toList()
        val plan = ValidationPlan.fromRelativePaths(files)
        val report = ValidationRun(backend).run(plan, DeviceInfo("fracture-edge CI", "JVM", 0, System.getProperty("os.arch")))
        assertEquals("every image is an entry or a failure", plan.size, report.images.size + report.failures.size)
        val tiffs = plan.filter { it.path.endsWith(".tif") }
        assertEquals(plan.size - tiffs.size, report.images.size)
        assertEquals(tiffs.map { it.path }, report.failures.map { it.path })
        assertTrue(report.failures.all { "send it to edge serve" in it.error })
        for (img in report.images) {
            val want = byName.getValue(File(img.path).nameWithoutExtension).json.getJSONObject("expected").getJSONObject("probabilities")
            for (label in spec.labels) assertEquals(img.path, want.getDouble(label), img.probabilities.getValue(label), 1e-6)
        }
        out.writeText(report.toJson())
        println("device report: ${report.images.size} images, ${report.failures.size} failures -> $out")
    }
}
