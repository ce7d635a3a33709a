package org.fractureedge.core

import com.sun.net.httpserver.HttpExchange
import com.sun.net.httpserver.HttpServer
import java.net.InetAddress
import java.net.InetSocketAddress
import java.net.ServerSocket
import java.util.concurrent.Executors
import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Before
import org.junit.Test

/** The client against a tiny loopback HTTP server (JDK built-in): happy path and every failure. */
class ServerClientTest {
    private lateinit var server: HttpServer
    private val pool = Executors.newFixedThreadPool(2)
    private var lastAuth: String? = null
    private var lastBody: ByteArray = ByteArray(0)
    private var lastContentType: String? = null
    private val baseUrl get() = "http://127.0.0.1:${server.address.port}"

    private val predictJson =
        """{"model": {"id": "m", "sha256": "s"}, "task": "binary", "label": "fractured",
           "probabilities": {"fractured": 0.71, "not_fractured": 0.29}, "positive_probability": 0.71,
           "threshold": 0.35, "decision": true, "timings_ms": {"decode": 3.1, "inference": 20.2, "total": 25.0}}"""

    private val explainJson =
        predictJson.trimEnd().removeSuffix("}") +
            """, "heatmap": {"method": "gradcam", "target_label": "fractured",
               "grid": [[0.0, 0.5, 1.0], [0.25, 0.75, 1.0]], "grid_shape": [2, 3], "png_base64": "AAAA"}}"""

    @Before
    fun start() {
        server = HttpServer.create(InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0)
        server.executor = pool
        server.start()
    }

    @After
    fun stop() {
        server.stop(0)
        pool.shutdownNow()
    }

    private fun route(path: String, handler: (HttpExchange) -> Unit) {
        server.createContext(path) { ex ->
            try {
                lastAuth = ex.requestHeaders.getFirst("Authorization")
                lastContentType = ex.requestHeaders.getFirst("Content-Type")
                lastBody = ex.requestBody.readBytes()
                handler(ex)
            } catch (e: Exception) {
                // Client gave up (timeout test): nothing to answer.
            } finally {
                ex.close()
            }
        }
    }

    private fun HttpExchange.reply(status: Int, body: String, headers: Map<String, String> = mapOf("Content-Type" to "application/json")) {
        for ((k, v) in headers) responseHeaders.add(k, v)
        val bytes = body.toByteArray()
        sendResponseHeaders(status, if (bytes.isEmpty()) -1 else bytes.size.toLong())
        if (bytes.isNotEmpty()) responseBody.use { it.write(bytes) }
    }

    private inline fun <reified T : ServerException> expect(block: () -> Unit): T {
        try {
            block()
        } catch (e: ServerException) {
            if (e is T) return e
            fail("expected ${T::class.simpleName}, got ${e::class.simpleName}: ${e.message}")
        }
        fail("expected ${T::class.simpleName}, nothing was thrown")
        throw IllegalStateException()
    }

    @Test
    fun predictSendsMultipartWithBearerTokenAndParsesAnswer() {
        route("/v1/predict") { it.reply(200, predictJson) }
        val image = byteArrayOf(0xFF.toByte(), 0xD8.toByte(), 1, 2, 3, 0, 13, 10)
        val p = ServerClient(baseUrl, "s3cret").predict(image, "x.jpg", "image/jpeg")
        assertEquals("Bearer s3cret", lastAuth)
        assertTrue(lastContentType!!.startsWith("multipart/form-data; boundary="))
        val boundary = lastContentType!!.substringAfter("boundary=")
        val text = String(lastBody, Charsets.ISO_8859_1)
        assertTrue(text.startsWith("--$boundary\r\n"))
        assertTrue(text.contains("Content-Disposition: form-data; name=\"file\"; filename=\"x.jpg\""))
        assertTrue(text.endsWith("\r\n--$boundary--\r\n"))
        assertTrue("file bytes are in the body unchanged", text.contains(String(image, Charsets.ISO_8859_1)))
        assertEquals("fractured", p.label)
        assertEquals(0.71, p.probabilities.getValue("fractured"), 1e-12)
        assertEquals(listOf("fractured", "not_fractured"), p.probabilities.keys.toList())
        assertEquals(true, p.decision)
        assertEquals(20.2, p.timingsMs.getValue("inference"), 1e-12)
        assertEquals("m", p.modelId)
    }

    @Test
    fun typesAreNotAskedForByDefault() {
        var query: String? = "unset"
        route("/v1/predict") {
            query = it.requestURI.rawQuery
            it.reply(200, predictJson)
        }
        val p = ServerClient(baseUrl, "t").predict(byteArrayOf(1, 2, 3))
        val text = String(lastBody, Charsets.ISO_8859_1)
        assertFalse("no types field in the default request", text.contains("name=\"types\""))
        assertEquals("no query string", null, query)
        assertEquals(null, p.fractureType)
        assertEquals(null, p.fractureTypeProblem)
    }

    @Test
    fun typesTrueIsSentAsAFormFieldWhenAsked() {
        val type =
            """{"model": {"id": "types", "sha256": "${"0f".repeat(32)}"}, "label": "spiral",
               "probabilities": {"oblique": 0.4, "spiral": 0.6}, "top3": ["spiral", "oblique"],
               "cv_top1": 0.21, "cv_top3": 0.49, "cv_macro_f1": null, "weak": true,
               "accuracy": "top-1 0.21 in cross-validation; a guess, not a finding"}"""
        route("/v1/predict") { it.reply(200, predictJson.trimEnd().removeSuffix("}") + ", \"fracture_type\": $type}") }
        val p = ServerClient(baseUrl, "t").predict(byteArrayOf(1, 2, 3), types = true)
        val boundary = lastContentType!!.substringAfter("boundary=")
        val text = String(lastBody, Charsets.ISO_8859_1)
        assertTrue(text.contains("--$boundary\r\nContent-Disposition: form-data; name=\"types\"\r\n\r\ntrue\r\n"))
        assertEquals("spiral", p.fractureType!!.label)
        assertEquals(
            "Type (guess): spiral — top-1 0.21 in cross-validation; a guess, not a finding",
            FractureTypeLine.text(p)
        )
    }

    @Test
    fun malformedTypeKeepsTheFractureAnswer() {
        route("/v1/predict") { it.reply(200, predictJson.trimEnd().removeSuffix("}") + ", \"fracture_type\": {\"label\": [1]}}") }
        val p = ServerClient(baseUrl, "t").predict(byteArrayOf(1), types = true)
        assertEquals("fractured", p.label)
        assertEquals(true, p.decision)
        assertEquals(null, p.fractureType)
        assertTrue(p.fractureTypeProblem!!.startsWith("the server's fracture type is malformed"))
    }

    @Test
    fun endlessAnswerIsRefusedNotBuffered() {
        route("/v1/predict") { ex ->
            ex.responseHeaders.add("Content-Type", "application/json")
            ex.sendResponseHeaders(200, 0) // chunked, no length announced
            ex.responseBody.use { out ->
                val chunk = ByteArray(64 * 1024) { ' '.code.toByte() }
                repeat(ServerClient.MAX_ANSWER_BYTES / chunk.size + 2) { out.write(chunk) }
            }
        }
        val e = expect<ServerException.MalformedResponse> { ServerClient(baseUrl, "t").predict(byteArrayOf(1)) }
        assertTrue(e.message!!.contains("larger than 8 MiB"))
    }

    @Test
    fun explainParsesHeatmapGrid() {
        route("/v1/explain") { it.reply(200, explainJson) }
        val p = ServerClient(baseUrl, "t").explain(byteArrayOf(1, 2, 3))
        val h = p.heatmap!!
        assertEquals(2, h.rows)
        assertEquals(3, h.cols)
        assertEquals(0.75f, h.at(1, 1), 0f)
        assertEquals("gradcam", h.method)
    }

    @Test
    fun explainWithoutHeatmapIsMalformed() {
        route("/v1/explain") { it.reply(200, predictJson) }
        expect<ServerException.MalformedResponse> { ServerClient(baseUrl, "t").explain(byteArrayOf(1)) }
    }

    @Test
    fun wrongTokenIsUnauthorized() {
        route("/v1/predict") {
            it.reply(
                401,
                """{"error": {"code": "unauthorized", "message": "missing or wrong token"}}""",
                mapOf("Content-Type" to "application/json", "WWW-Authenticate" to "Bearer")
            )
        }
        val e = expect<ServerException.Unauthorized> { ServerClient(baseUrl, "bad").predict(byteArrayOf(1)) }
        assertTrue(e.message!!.contains("401"))
    }

    @Test
    fun unauthorizedWithoutChallengeHeader() {
        route("/v1/predict") { it.reply(401, """{"error": {"code": "unauthorized", "message": "no token"}}""") }
        val e = expect<ServerException.Unauthorized> { ServerClient(baseUrl, "").predict(byteArrayOf(1)) }
        assertTrue(e.message!!.contains("no token"))
    }

    @Test
    fun slowServerTimesOut() {
        route("/v1/predict") {
            Thread.sleep(3_000)
            it.reply(200, predictJson)
        }
        val t0 = System.nanoTime()
        expect<ServerException.Timeout> { ServerClient(baseUrl, "t", connectTimeoutMs = 500, readTimeoutMs = 300).predict(byteArrayOf(1)) }
        assertTrue("gave up near the read timeout", (System.nanoTime() - t0) / 1e6 < 2_500)
    }

    @Test
    fun malformedJsonIsReported() {
        route("/v1/predict") { it.reply(200, "<html>not json</html>", mapOf("Content-Type" to "text/html")) }
        expect<ServerException.MalformedResponse> { ServerClient(baseUrl, "t").predict(byteArrayOf(1)) }
    }

    @Test
    fun jsonWithWrongShapeIsMalformed() {
        route("/v1/predict") { it.reply(200, """{"label": "x", "probabilities": {"y": 0.5}}""") }
        expect<ServerException.MalformedResponse> { ServerClient(baseUrl, "t").predict(byteArrayOf(1)) }
        route("/v1/explain") { it.reply(200, explainJson.replace("\"grid_shape\": [2, 3]", "\"grid_shape\": [3, 3]")) }
        expect<ServerException.MalformedResponse> { ServerClient(baseUrl, "t").explain(byteArrayOf(1)) }
    }

    @Test
    fun probabilityOutsideUnitIntervalIsMalformed() {
        route("/v1/predict") { it.reply(200, predictJson.replace("0.29", "1.29")) }
        expect<ServerException.MalformedResponse> { ServerClient(baseUrl, "t").predict(byteArrayOf(1)) }
    }

    @Test
    fun connectionRefusedIsUnreachable() {
        val port = ServerSocket(0, 1, InetAddress.getLoopbackAddress()).use { it.localPort }
        expect<ServerException.Unreachable> {
            ServerClient("http://127.0.0.1:$port", "t", connectTimeoutMs = 1_000).predict(byteArrayOf(1))
        }
    }

    @Test
    fun serverErrorsCarryCodeAndMessage() {
        route("/v1/predict") { it.reply(503, """{"error": {"code": "busy", "message": "try again"}}""") }
        val e = expect<ServerException.HttpFailure> { ServerClient(baseUrl, "t").predict(byteArrayOf(1)) }
        assertEquals(503, e.status)
        assertEquals("busy", e.code)
        assertTrue(e.message!!.contains("try again"))
    }

    @Test
    fun nonJsonErrorBodyStillGivesStatus() {
        route("/v1/predict") { it.reply(413, "Request Entity Too Large", mapOf("Content-Type" to "text/plain")) }
        val e = expect<ServerException.HttpFailure> { ServerClient(baseUrl, "t").predict(byteArrayOf(1)) }
        assertEquals(413, e.status)
        assertEquals("", e.code)
    }

    @Test
    fun healthAndModelCard() {
        route("/healthz") { it.reply(200, """{"status": "ok"}""") }
        route("/v1/model") { it.reply(200, """{"id": "m"}""") }
        val c = ServerClient("$baseUrl/", "t")
        assertTrue(c.healthy())
        assertEquals("""{"id": "m"}""", c.modelCard())
        assertEquals(baseUrl, c.baseUrl)
    }

    @Test
    fun addressesAreNormalizedOrRejected() {
        assertEquals("http://10.0.2.2:8000", ServerClient.normalizeBaseUrl(" 10.0.2.2:8000/ "))
        assertEquals("https://edge.example:443", ServerClient.normalizeBaseUrl("https://edge.example:443"))
        expect<ServerException.InvalidAddress> { ServerClient.normalizeBaseUrl("") }
        expect<ServerException.InvalidAddress> { ServerClient.normalizeBaseUrl("ftp://host") }
        expect<ServerException.InvalidAddress> { ServerClient.normalizeBaseUrl("http://") }
        assertFalse(ServerClient("http://127.0.0.1:1", "t", connectTimeoutMs = 300).healthy())
        assertNotNull(ServerResponse.parseError("""{"error": {"code": "c", "message": "m"}}"""))
    }

    @Test
    fun plainHttpOnlyToLoopbackAndTheEmulatorHostInDebug() {
        fun refused(url: String, debug: Boolean): Boolean = try {
            ServerClient.requireSecureTransport(url, debug)
            false
        } catch (e: ServerException.InvalidAddress) {
            true
        }
        assertFalse(refused("http://10.0.2.2:8000", debug = true))
        assertFalse(refused("127.0.0.1:8000", debug = true))
        assertFalse(refused("https://edge.example.org", debug = false))
        assertTrue(refused("http://10.0.2.2:8000", debug = false))
        assertTrue(refused("http://192.168.1.20:8000", debug = true))
    }
}
