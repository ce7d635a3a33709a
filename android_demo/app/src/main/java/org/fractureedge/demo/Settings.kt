package org.fractureedge.demo

import android.content.Context
import android.content.pm.ApplicationInfo
import org.fractureedge.core.AcceleratorPreference
import org.fractureedge.core.CpuThreads

/** Server address, token (Keystore-encrypted), accelerator preference, CPU threads and fracture types (off by default). */
class Settings(context: Context) {
    private val app = context.applicationContext
    private val prefs = app.getSharedPreferences(FILE, Context.MODE_PRIVATE)
    private val vault = TokenVault(prefs, KEY_TOKEN_ENCRYPTED)

    init {
        // A token saved in plain text by an earlier version moves into the vault once.
        prefs.getString(KEY_TOKEN_PLAIN, null)?.let { plain ->
            vault.write(plain)
            prefs.edit().remove(KEY_TOKEN_PLAIN).apply()
        }
    }

    /** Debug builds may talk plain HTTP to loopback and the emulator host (network_security_config). */
    val debugBuild: Boolean get() = (app.applicationInfo.flags and ApplicationInfo.FLAG_DEBUGGABLE) != 0

    var serverUrl: String
        get() = prefs.getString(KEY_URL, null) ?: DEFAULT_URL
        set(value) = prefs.edit().putString(KEY_URL, value.trim()).apply()

    var token: String
        get() = vault.read()
        set(value) = vault.write(value.trim())

    var accelerator: AcceleratorPreference
        get() =
            prefs.getString(KEY_ACCELERATOR, null)
                ?.let { name -> AcceleratorPreference.entries.firstOrNull { it.name == name } }
                ?: AcceleratorPreference.AUTO
        set(value) = prefs.edit().putString(KEY_ACCELERATOR, value.name).apply()

    /** The user's thread count, or null for the default (CpuThreads.resolve caps it to the cores). */
    var cpuThreads: Int?
        get() = prefs.getInt(KEY_THREADS, 0).takeIf { it > 0 }
        set(value) = prefs.edit().putInt(KEY_THREADS, value ?: 0).apply()

    /**
     * Ask the server for the fracture type after a positive finding. Off unless the user turns it on:
     * it sends the image to the server, and the type model is weak (shown as a guess).
     */
    var showFractureType: Boolean
        get() = prefs.getBoolean(KEY_TYPES, false)
        set(value) = prefs.edit().putBoolean(KEY_TYPES, value).apply()

    fun resolvedThreads(): Int = CpuThreads.resolve(cpuThreads, Runtime.getRuntime().availableProcessors())

    companion object {
        /** The host computer as seen from the Android emulator; edge serve's port. */
        const val DEFAULT_URL = "http://10.0.2.2:8000"
        private const val FILE = "fracture_edge_settings"
        private const val KEY_URL = "server_url"
        private const val KEY_TOKEN_PLAIN = "server_token"
        private const val KEY_TOKEN_ENCRYPTED = "server_token_gcm"
        private const val KEY_ACCELERATOR = "accelerator"
        private const val KEY_THREADS = "cpu_threads"
        private const val KEY_TYPES = "show_fracture_type"
    }
}
