package org.fractureedge.core

import java.io.ByteArrayOutputStream
import java.io.IOException
import java.io.InputStream
import java.net.ConnectException
import java.net.HttpRetryException
import java.net.HttpURLConnection
import java.net.MalformedURLException
import java.net.NoRouteToHostException
import java.net.SocketTimeoutException
import java.net.URL
import java.net.UnknownHostException
import java.util.UUID

/** Everything that can go wrong talking to `edge serve`, each with a message fit for the screen. */
sealed class ServerException(message: String, cause: Throwable? = null) : Exception(message, cause) {
    class InvalidAddress(detail: String) :
        ServerException("Server address is not valid: $detail. Set it in Settings, e.g. http://10.0.2.2:8000")

    class Unreachable(url: String, cause: Throwable?) :
        ServerException(
            "Cannot reach the server at $url (${cause?.javaClass?.simpleName ?: "no route"}). The local model still works offline.",
            cause
        )

    class Timeout(url: String, cause: Throwable?) :
        ServerException("The server at $url did not answer in time. The local model still works offline.", cause)

    class Unauthorized(detail: String) : ServerException("The server refused the token (401): $detail. Check the token in Settings.")

    class HttpFailure(val status: Int, val code: String, detail: String) :
        ServerException("The server answered $status${if (code.isNotEmpty()) " ($code)" else ""}: $detail")

    class MalformedResponse(detail: String) : ServerException("The server's answer could not be read: $detail")
}

/**
 * Client for `edge serve` on plain java.net.HttpURLConnection (available on Android and the JVM).
 * Blocking: call it from a background thread.
 */
class ServerClient(
    baseUrl: String,
    private val token: String,
    private val connectTimeoutMs: Int = 5_000,
    private val readTimeoutMs: Int = 30_000
) {
    val baseUrl: String = normalizeBaseUrl(baseUrl)

    /**
     * [types]: also ask for the fracture type (`types=true`, a weak model; see [FractureTypeLine]).
     * Off by default, and then the request carries no `types` field at all.
     */
    fun predict(
        image: ByteArray,
        filename: String = "image.jpg",
        contentType: String = "image/jpeg",
        types: Boolean = false
    ): ServerPrediction {
        val fields = if (types) mapOf("types" to "true") else emptyMap()
        return ServerResponse.parsePrediction(upload("/v1/predict", image, filename, contentType, fields), typesAsked = types)
    }

    // The app draws the overlay from the grid (Heatmap.overlay), so it asks for no overlay PNG.
    fun explain(image: ByteArray, filename: String = "image.jpg", contentType: String = "image/jpeg"): ServerPrediction =
        ServerResponse.parsePrediction(
            upload("/v1/explain", image, filename, contentType, mapOf("overlay" to "false")),
            requireHeatmap = true
        )

    /** The model card JSON from `/v1/model`, as text. */
    fun modelCard(): String = request("GET", "/v1/model", null, null)

    /** True when `/healthz` answers 2xx. */
    fun healthy(): Boolean = try {
        request("GET", "/healthz", null, null)
        true
    } catch (e: ServerException) {
        false
    }

    private fun upload(
        path: String,
        image: ByteArray,
        filename: String,
        contentType: String,
        fields: Map<String, String> = emptyMap()
    ): String {
        val boundary = "fracture-edge-" + UUID.randomUUID().toString().replace("-", "")
        val safeName = filename.replace(Regex("[\"\\r\\n]"), "_")
        val fieldParts =
            fields.entries.joinToString("") { (k, v) ->
                "--$boundary\r\nContent-Disposition: form-data; name=\"$k\"\r\n\r\n$v\r\n"
            }
        val head =
            fieldParts +
                "--$boundary\r\n" +
                "Content-Disposition: form-data; name=\"file\"; filename=\"$safeName\"\r\n" +
                "Content-Type: $contentType\r\n\r\n"
        val tail = "\r\n--$boundary--\r\n"
        val body = head.toByteArray(Charsets.UTF_8) + image + tail.toByteArray(Charsets.UTF_8)
        return request("POST", path, body, "multipart/form-data; boundary=$boundary")
    }

    private fun request(method: String, path: String, body: ByteArray?, contentType: String?): String {
        val url = baseUrl + path
        val conn =
            try {
                URL(url).openConnection() as HttpURLConnection
            } catch (e: MalformedURLException) {
                throw ServerException.InvalidAddress(e.message ?: url)
            } catch (e: IOException) {
                throw ServerException.Unreachable(url, e)
            }
        try {
            conn.requestMethod = method
            conn.connectTimeout = connectTimeoutMs
            conn.readTimeout = readTimeoutMs
            conn.instanceFollowRedirects = false
            conn.useCaches = false
            conn.setRequestProperty("Accept", "application/json")
            if (token.isNotEmpty()) conn.setRequestProperty("Authorization", "Bearer $token")
            if (body != null) {
                conn.doOutput = true
                conn.setRequestProperty("Content-Type", contentType)
                // No fixed-length streaming: the JDK then cannot read a 401's body (HttpRetryException).
                conn.outputStream.use { it.write(body) }
            }
            val status = conn.responseCode
            val text = (if (status >= 400) conn.errorStream else conn.inputStream).readText(MAX_ANSWER_BYTES)
            if (status in 200..299) return text ?: ""
            val err = ServerResponse.parseError(text)
            val detail = err?.message?.takeIf { it.isNotEmpty() } ?: text?.take(200)?.ifBlank { null } ?: "no details"
            if (status == 401) throw ServerException.Unauthorized(detail)
            throw ServerException.HttpFailure(status, err?.code ?: "", detail)
        } catch (e: HttpRetryException) {
            // The JDK's streaming mode cannot replay a body after an authentication challenge.
            if (e.responseCode() == 401) throw ServerException.Unauthorized("token missing or wrong")
            throw ServerException.HttpFailure(e.responseCode(), "", e.reason ?: "request failed")
        } catch (e: SocketTimeoutException) {
            throw ServerException.Timeout(url, e)
        } catch (e: ConnectException) {
            throw ServerException.Unreachable(url, e)
        } catch (e: UnknownHostException) {
            throw ServerException.Unreachable(url, e)
        } catch (e: NoRouteToHostException) {
            throw ServerException.Unreachable(url, e)
        } catch (e: IOException) {
            throw ServerException.Unreachable(url, e)
        } finally {
            conn.disconnect()
        }
    }

    // Bounded: a broken or hostile server must not run the phone out of memory with an endless answer.
    private fun InputStream?.readText(limit: Int): String? = this?.use { input ->
        val out = ByteArrayOutputStream()
        val buf = ByteArray(8192)
        while (true) {
            val n = input.read(buf)
            if (n < 0) break
            if (out.size() + n > limit) throw ServerException.MalformedResponse("the answer is larger than ${limit / (1024 * 1024)} MiB")
            out.write(buf, 0, n)
        }
        out.toByteArray().toString(Charsets.UTF_8)
    }

    companion object {
        /** Largest answer read: a predict or explain answer (grid only) is a few kB. */
        const val MAX_ANSWER_BYTES = 8 * 1024 * 1024

        /** Hosts that may be reached over plain HTTP in debug builds (network_security_config.xml says the same). */
        val CLEARTEXT_HOSTS = setOf("localhost", "127.0.0.1", "10.0.2.2")

        /**
         * Plain HTTP only to this device or the emulator's host, and only in debug builds; HTTPS
         * otherwise. Checked before connecting, so the user reads why instead of a platform error.
         */
        fun requireSecureTransport(baseUrl: String, debugBuild: Boolean) {
            val url = java.net.URL(normalizeBaseUrl(baseUrl))
            if (url.protocol == "https") return
            if (!debugBuild || url.host.lowercase() !in CLEARTEXT_HOSTS) {
                throw ServerException.InvalidAddress(
                    "plain http:// is allowed only to this device or the emulator host (10.0.2.2) in debug builds; use https://"
                )
            }
        }

        /** Accepts "host:port" or a full http(s) URL; strips trailing slashes. */
        fun normalizeBaseUrl(raw: String): String {
            val trimmed = raw.trim()
            if (trimmed.isEmpty()) throw ServerException.InvalidAddress("it is empty")
            val withScheme = (if ("://" in trimmed) trimmed else "http://$trimmed").trimEnd('/')
            val url =
                try {
                    URL(withScheme)
                } catch (e: MalformedURLException) {
                    throw ServerException.InvalidAddress("'$raw' (${e.message})")
                }
            if (url.protocol != "http" &&
                url.protocol != "https"
            ) {
                throw ServerException.InvalidAddress("'$raw' must start with http:// or https://")
            }
            if (url.host.isNullOrEmpty()) throw ServerException.InvalidAddress("'$raw' has no host")
            return withScheme
        }
    }
}
