package org.fractureedge.demo

import android.content.Context
import org.fractureedge.core.AcceleratorPreference

/** Server address, token and accelerator preference, kept in SharedPreferences. */
class Settings(context: Context) {
    private val prefs = context.applicationContext.getSharedPreferences(FILE, Context.MODE_PRIVATE)

    var serverUrl: String
        get() = prefs.getString(KEY_URL, null) ?: DEFAULT_URL
        set(value) = prefs.edit().putString(KEY_URL, value.trim()).apply()

    var token: String
        get() = prefs.getString(KEY_TOKEN, null) ?: ""
        set(value) = prefs.edit().putString(KEY_TOKEN, value.trim()).apply()

    var accelerator: AcceleratorPreference
        get() =
            prefs.getString(KEY_ACCELERATOR, null)
                ?.let { name -> AcceleratorPreference.entries.firstOrNull { it.name == name } }
                ?: AcceleratorPreference.AUTO
        set(value) = prefs.edit().putString(KEY_ACCELERATOR, value.name).apply()

    companion object {
        /** The host computer as seen from the Android emulator; edge serve's port. */
        const val DEFAULT_URL = "http://10.0.2.2:8000"
        private const val FILE = "fracture_edge_settings"
        private const val KEY_URL = "server_url"
        private const val KEY_TOKEN = "server_token"
        private const val KEY_ACCELERATOR = "accelerator"
    }
}
