package org.fractureedge.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

class ClassifierTest {
    private class FakeEngine(private val answer: ByteArray) : InferenceEngine {
        override val accelerator = Accelerator.CPU
        override val threads = 2
        var seen: ByteArray? = null
        var closed = false

        override fun run(input: ByteArray): ByteArray {
            seen = input
            return answer
        }

        override fun close() {
            closed = true
        }
    }

    @Test
    fun runsTheWholePipelineAndClosesTheEngine() {
        val engine = FakeEngine(byteArrayOf(200.toByte()))
        var t = 0L
        val classifier = Classifier(Fixtures.binarySpec(), engine) {
            t += 1_000_000
            t
        }
        val px = IntArray(10 * 20) { Fixtures.argb(255, 255, 255) }
        val r = classifier.classify(px, 10, 20)
        assertEquals(224 * 224, engine.seen!!.size)
        assertEquals("fractured", r.prediction.label)
        assertEquals(1.0, r.inferenceMs, 1e-9)
        assertEquals(3.0, r.totalMs, 1e-9)
        assertEquals(Accelerator.CPU, r.accelerator)
        classifier.close()
        assertTrue(engine.closed)
    }

    @Test
    fun tensorCheckFindsMismatches() {
        val spec = Fixtures.binarySpec()
        val okIn = TensorInfo(listOf(1, 224, 224, 1), "UINT8", 0.003921569, 0)
        val okOut = TensorInfo(listOf(1, 1), "uint8", 0.00390625, 0)
        assertEquals(emptyList<String>(), TensorCheck.problems(spec, okIn, okOut))
        val badIn = TensorInfo(listOf(1, 256, 256, 3), "FLOAT32", 0.0, 0)
        val badOut = TensorInfo(listOf(1, 1), "uint8", 0.5, 3)
        val p = TensorCheck.problems(spec, badIn, badOut)
        assertEquals(4, p.size)
        assertArrayEquals(
            arrayOf(true, true, true, true),
            arrayOf(
                p[0].contains("input shape"),
                p[1].contains("input dtype"),
                p[2].contains("output scale"),
                p[3].contains("output zero_point")
            )
        )
        try {
            TensorCheck.requireMatch(spec, badIn, okOut)
            throw AssertionError("mismatch accepted")
        } catch (e: SpecException) {
            assertTrue(e.message!!.contains("does not match its spec"))
        }
    }
}
