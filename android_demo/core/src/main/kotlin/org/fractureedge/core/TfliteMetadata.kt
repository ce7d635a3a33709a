package org.fractureedge.core

import java.nio.BufferUnderflowException
import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * Reads one named entry of a .tflite file's flatbuffer `metadata` table (schema.fbs: Model
 * field 6 `metadata: [Metadata{name, buffer}]`, field 4 `buffers: [Buffer{data, offset, size}]`).
 * `edge convert` stores the model spec there as `fracture_edge_spec`, so the .tflite alone is
 * enough. A few dozen lines of offset arithmetic instead of a flatbuffers dependency.
 */
object TfliteMetadata {
    const val SPEC_ENTRY = "fracture_edge_spec"
    private const val MODEL_BUFFERS = 4
    private const val MODEL_METADATA = 6

    /** The entry's bytes, or null when the model has no entry of that name. */
    fun find(model: ByteArray, name: String): ByteArray? {
        if (model.size < 8 || String(model, 4, 4, Charsets.US_ASCII) != "TFL3") {
            throw SpecException("not a .tflite model (flatbuffer identifier TFL3 missing)")
        }
        val b = ByteBuffer.wrap(model).order(ByteOrder.LITTLE_ENDIAN)
        return try {
            val root = b.getInt(0)
            val metadata = vector(b, root, MODEL_METADATA) ?: return null
            val buffers = vector(b, root, MODEL_BUFFERS) ?: return null
            (0 until b.getInt(metadata))
                .map { table(b, metadata, it) }
                .firstOrNull { entry -> vector(b, entry, 0)?.let { utf8(b, it) } == name }
                ?.let { entry -> bufferBytes(b, model, table(b, buffers, u32(b, entry, 1))) }
        } catch (e: IndexOutOfBoundsException) {
            throw SpecException("the .tflite flatbuffer is truncated or corrupt")
        } catch (e: BufferUnderflowException) {
            throw SpecException("the .tflite flatbuffer is truncated or corrupt")
        }
    }

    /** The embedded model spec, or null when the model carries none (older conversions). */
    fun spec(model: ByteArray): ModelSpec? = find(model, SPEC_ENTRY)?.let { ModelSpec.parse(String(it, Charsets.UTF_8)) }

    /** Absolute position of field [id]'s value in [table], or 0 when the field is absent. */
    private fun field(b: ByteBuffer, table: Int, id: Int): Int {
        val vtable = table - b.getInt(table)
        val vtLen = b.getShort(vtable).toInt() and 0xFFFF
        val slot = 4 + 2 * id
        val off = if (slot < vtLen) b.getShort(vtable + slot).toInt() and 0xFFFF else 0
        return if (off == 0) 0 else table + off
    }

    /** Position of a vector's length word (elements follow), or null when absent. */
    private fun vector(b: ByteBuffer, table: Int, id: Int): Int? {
        val pos = field(b, table, id)
        return if (pos == 0) null else pos + b.getInt(pos)
    }

    private fun table(b: ByteBuffer, vector: Int, i: Int): Int {
        require(i in 0 until b.getInt(vector)) { "index $i outside a flatbuffer vector" }
        val e = vector + 4 + 4 * i
        return e + b.getInt(e)
    }

    private fun u32(b: ByteBuffer, table: Int, id: Int): Int = field(b, table, id).let { if (it == 0) 0 else b.getInt(it) }

    private fun utf8(b: ByteBuffer, vector: Int): String = String(b.array(), vector + 4, b.getInt(vector), Charsets.UTF_8)

    /** A Buffer's bytes: inline `data`, or (models over 2 GB) `offset`/`size` into the file. */
    private fun bufferBytes(b: ByteBuffer, model: ByteArray, buffer: Int): ByteArray {
        vector(b, buffer, 0)?.let { v -> return model.copyOfRange(v + 4, v + 4 + b.getInt(v)) }
        val off = field(b, buffer, 1).let { if (it == 0) 0L else b.getLong(it) }
        val size = field(b, buffer, 2).let { if (it == 0) 0L else b.getLong(it) }
        if (off <= 1 || off + size > model.size) return ByteArray(0)
        return model.copyOfRange(off.toInt(), (off + size).toInt())
    }
}
