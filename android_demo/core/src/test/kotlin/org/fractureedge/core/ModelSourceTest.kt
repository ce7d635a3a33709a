package org.fractureedge.core

import java.io.File
import org.json.JSONObject
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

/** The shipped assets: the spec embedded in each .tflite, the sidecar fallback and the sha256 check. */
class ModelSourceTest {
    private fun asset(name: String): File = TestEnv.requireRepoFile("android_demo/app/src/main/assets/$name")

    private fun refused(block: () -> Unit): String {
        try {
            block()
        } catch (e: SpecException) {
            return e.message!!
        }
        fail("accepted")
        throw AssertionError()
    }

    @Test
    fun embeddedSpecEqualsTheSidecarOfEachShippedModel() {
        for (name in listOf(ModelFiles.INT8_MODEL, ModelFiles.FP16_MODEL)) {
            val model = asset(name).readBytes()
            val sidecar = asset(ModelFiles.specFor(name)).readText()
            val r = ModelSource.resolve(name, model, sidecar)
            assertEquals("embedded in $name", r.specOrigin)
            assertEquals(JSONObject(sidecar).getString("tflite_sha256"), r.sha256)
            assertEquals(ModelSpec.parse(sidecar), r.spec)
            assertEquals(ModelSource.resolve(name, model, null).spec, r.spec) // the .tflite alone is enough
        }
    }

    @Test
    fun aModelThatDoesNotMatchItsSidecarIsRefused() {
        val model = asset(ModelFiles.INT8_MODEL).readBytes()
        val otherSidecar = asset(ModelFiles.FP16_SPEC).readText()
        assertTrue(refused { ModelSource.resolve(ModelFiles.INT8_MODEL, model, otherSidecar) }.contains("does not match its spec"))
        val changed = model.copyOf().also { it[it.size - 1] = (it[it.size - 1] + 1).toByte() }
        assertTrue(
            refused {
                ModelSource.resolve(ModelFiles.INT8_MODEL, changed, asset(ModelFiles.INT8_SPEC).readText())
            }.contains("sha256")
        )
        assertTrue(refused { ModelSource.resolve(ModelFiles.INT8_MODEL, model, "{ nope") }.contains("not valid JSON"))
    }

    @Test
    fun theSidecarIsTheFallbackWithoutAnEmbeddedSpec() {
        val model = asset(ModelFiles.INT8_MODEL).readBytes()
        // Rename the metadata entry in place: same length, so the flatbuffer stays valid.
        val text = String(model, Charsets.ISO_8859_1)
        val at = text.indexOf(TfliteMetadata.SPEC_ENTRY)
        assertTrue(at > 0)
        val renamed = model.copyOf().also { it[at] = 'X'.code.toByte() }
        assertNull(TfliteMetadata.spec(renamed))
        val sidecar = JSONObject(asset(ModelFiles.INT8_SPEC).readText()).apply { remove("tflite_sha256") }.toString()
        assertEquals("${ModelFiles.INT8_SPEC} (sidecar)", ModelSource.resolve(ModelFiles.INT8_MODEL, renamed, sidecar).specOrigin)
        assertTrue(refused { ModelSource.resolve(ModelFiles.INT8_MODEL, renamed, null) }.contains("no embedded spec"))
    }

    @Test
    fun corruptOrForeignFilesGiveAMessage() {
        assertTrue(refused { TfliteMetadata.find(ByteArray(64), "x") }.contains("TFL3"))
        val model = asset(ModelFiles.INT8_MODEL).readBytes()
        assertTrue(refused { TfliteMetadata.find(model.copyOf(40), "x") }.contains("truncated"))
    }
}
