package org.fractureedge.core

import java.io.File
import org.json.JSONObject
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

/** The shipped assets: the spec embedded in each .tflite, the sidecar fallback and the sha256 check. */
class ModelSourceTest {
    private fun asset(name: String): File = TestEnv.requireRepoFile("android_demo/app/src/main/assets/$name")

    private fun fileSha256(f: File): String =
        java.security.MessageDigest.getInstance("SHA-256").digest(f.readBytes()).joinToString("") { "%02x".format(it) }

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
            // The sidecar is a byte copy of the embedded spec and names no file hash (spec version 1).
            assertEquals(String(TfliteMetadata.find(model, TfliteMetadata.SPEC_ENTRY)!!, Charsets.UTF_8), sidecar)
            assertFalse(JSONObject(sidecar).has("tflite_sha256"))
            assertEquals(fileSha256(asset(name)), r.sha256)
            assertEquals(ModelSpec.parse(sidecar), r.spec)
            assertEquals(ModelSource.resolve(name, model, null).spec, r.spec) // the .tflite alone is enough
        }
    }

    @Test
    fun aModelThatDoesNotMatchItsSidecarIsRefused() {
        val model = asset(ModelFiles.INT8_MODEL).readBytes()
        val otherSidecar = asset(ModelFiles.FP16_SPEC).readText()
        assertTrue(refused { ModelSource.resolve(ModelFiles.INT8_MODEL, model, otherSidecar) }.contains("does not match its spec"))
        // A .tflite from another run of the same conversion: only the embedded spec's bytes differ.
        val text = String(model, Charsets.ISO_8859_1)
        val created = text.indexOf("\"created\": \"") + "\"created\": \"".length
        assertTrue(created > "\"created\": \"".length)
        val rerun = model.copyOf().also { it[created] = if (it[created] == '1'.code.toByte()) '2'.code.toByte() else '1'.code.toByte() }
        val own = asset(ModelFiles.INT8_SPEC).readText()
        assertTrue(refused { ModelSource.resolve(ModelFiles.INT8_MODEL, rerun, own) }.contains("embedded spec (sha256"))
        // A sidecar of the older format names the file's hash, and it is still checked.
        val changed = model.copyOf().also { it[it.size - 1] = (it[it.size - 1] + 1).toByte() }
        val legacy = JSONObject(own).put("tflite_sha256", fileSha256(asset(ModelFiles.INT8_MODEL))).toString()
        assertEquals("embedded in ${ModelFiles.INT8_MODEL}", ModelSource.resolve(ModelFiles.INT8_MODEL, model, legacy).specOrigin)
        assertTrue(refused { ModelSource.resolve(ModelFiles.INT8_MODEL, changed, legacy) }.contains("its sha256 is"))
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
        val sidecar = asset(ModelFiles.INT8_SPEC).readText()
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
