package org.fractureedge.core

import java.nio.ByteBuffer
import java.nio.ByteOrder
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Test

class PostprocessorTest {
    @Test
    fun binaryDequantisesAndDecidesAtThreshold() {
        val post = Postprocessor(Fixtures.binarySpec()) // scale 1/256, zp 0, threshold 0.35
        val p = post.fromRaw(byteArrayOf(182.toByte()))
        assertEquals(182 / 256.0, p.positiveProbability!!, 1e-12)
        assertEquals(1 - 182 / 256.0, p.probabilities.getValue("not_fractured"), 1e-12)
        assertEquals("fractured", p.label)
        assertEquals(true, p.decision)
        assertEquals(listOf("fractured", "not_fractured"), p.probabilities.keys.toList())
        val low = post.fromRaw(byteArrayOf(10))
        assertEquals(false, low.decision)
        assertEquals("not_fractured", low.label)
        assertEquals("not_fractured", low.topK.first().label)
    }

    @Test
    fun thresholdIsInclusive() {
        val p = Postprocessor(Fixtures.binarySpec()).fromProbabilities(doubleArrayOf(0.35))
        assertEquals(true, p.decision)
        assertEquals(0.35, p.threshold!!, 0.0)
    }

    @Test
    fun int8OutputUsesZeroPoint() {
        val o = Fixtures.binarySpecJson()
        o.getJSONObject("output").put("dtype", "int8").put("zero_point", -128)
        val p = Postprocessor(ModelSpec.fromJson(o)).fromRaw(byteArrayOf(0))
        assertEquals(128 / 256.0, p.positiveProbability!!, 1e-12)
    }

    @Test
    fun multiclassTopKSortedWithArgmaxLabel() {
        val spec = Fixtures.multiclassSpec()
        val raw = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN)
        raw.asFloatBuffer().put(floatArrayOf(0.2f, 0.5f, 0.3f))
        val p = Postprocessor(spec).fromRaw(raw.array(), ByteOrder.LITTLE_ENDIAN)
        assertEquals("b", p.label)
        assertEquals(listOf("b", "c", "a"), p.topK.map { it.label })
        assertEquals(listOf("a", "b", "c"), p.probabilities.keys.toList())
        assertNull(p.decision)
        assertEquals(listOf("b", "c"), Postprocessor(spec).fromProbabilities(doubleArrayOf(0.2, 0.5, 0.3), k = 2).topK.map { it.label })
    }

    @Test
    fun tiesKeepLabelOrder() {
        val top = Postprocessor.topK(linkedMapOf("x" to 0.4, "y" to 0.4, "z" to 0.2), 3)
        assertEquals(listOf("x", "y", "z"), top.map { it.label })
    }

    @Test(expected = SpecException::class)
    fun wrongOutputSizeIsASpecError() {
        Postprocessor(Fixtures.binarySpec()).fromRaw(byteArrayOf(1, 2))
    }
}
