package org.fractureedge.core

import org.json.JSONObject
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

class DeviceReportTest {
    private fun report(images: List<ReportImage>) = DeviceReport(
        model = ReportModel("fracture_int8.tflite", DeviceReport.sha256Hex("abc".toByteArray()), "bundle", "int8"),
        device = DeviceInfo("Google", "Pixel 8", 34, "arm64-v8a"),
        accelerator = Accelerator.GPU,
        threads = 4,
        created = DeviceReport.timestamp(1_795_708_800_000L),
        images = images
    )

    @Test
    fun writesTheDocumentedFormat() {
        val img = ReportImage("fractured/IMG0000019.jpg", "fractured", linkedMapOf("fractured" to 0.71, "not_fractured" to 0.29), 12.3)
        val o = JSONObject(report(listOf(img)).toJson())
        assertEquals("fracture-edge/device-report", o.getString("format"))
        assertEquals(1, o.getInt("version"))
        val m = o.getJSONObject("model")
        assertEquals("fracture_int8.tflite", m.getString("file"))
        assertEquals("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", m.getString("sha256"))
        assertEquals("bundle", m.getString("bundle_sha256"))
        assertEquals("int8", m.getString("precision"))
        val d = o.getJSONObject("device")
        assertEquals(34, d.getInt("android_sdk"))
        assertEquals("arm64-v8a", d.getString("abi"))
        assertEquals("gpu", o.getString("accelerator"))
        assertEquals(4, o.getInt("threads"))
        assertEquals("2026-11-26T16:00:00Z", o.getString("created"))
        val i = o.getJSONArray("images").getJSONObject(0)
        assertEquals("fractured/IMG0000019.jpg", i.getString("path"))
        assertEquals("fractured", i.getString("label"))
        assertEquals(0.71, i.getJSONObject("probabilities").getDouble("fractured"), 0.0)
        assertEquals(12.3, i.getDouble("latency_ms"), 0.0)
    }

    @Test
    fun emptyRunIsStillValidJson() {
        assertEquals(0, JSONObject(report(emptyList()).toJson(indent = 0)).getJSONArray("images").length())
    }

    @Test(expected = IllegalArgumentException::class)
    fun nanProbabilityIsRefused() {
        report(listOf(ReportImage("a/b.jpg", "a", mapOf("a" to Double.NaN), 1.0))).toJson()
    }

    @Test
    fun validationPlanTakesLabelsFromSubfolders() {
        val plan =
            ValidationPlan.fromRelativePaths(
                listOf(
                    "fractured/IMG1.jpg",
                    "not_fractured/IMG2.PNG",
                    "top-level.jpg",
                    "fractured/notes.txt",
                    ".hidden/x.jpg",
                    "fractured/.thumb.jpg",
                    "not_fractured\\IMG3.jpeg",
                    "fractured/IMG1.jpg"
                )
            )
        assertEquals(
            listOf(
                LabelledImage("fractured/IMG1.jpg", "fractured"),
                LabelledImage("not_fractured/IMG2.PNG", "not_fractured"),
                LabelledImage("not_fractured/IMG3.jpeg", "not_fractured")
            ),
            plan
        )
        val unknown = ValidationPlan.unknownLabels(plan + LabelledImage("other/x.jpg", "other"), Fixtures.binarySpec())
        assertEquals(setOf("other"), unknown)
        assertTrue(ValidationPlan.fromRelativePaths(emptyList()).isEmpty())
    }
}
