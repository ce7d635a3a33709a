package org.fractureedge.core

import java.io.File
import org.junit.Assume

/**
 * Environment-gated tests: a test that needs outside data runs when its variable is set,
 * is skipped only when its EDGE_SKIP_* variable is 1, and otherwise fails, so CI never
 * skips anything silently.
 */
object TestEnv {
    fun get(name: String): String? = System.getenv(name)?.takeIf { it.isNotBlank() }

    fun skipping(flag: String): Boolean = System.getenv(flag) == "1"

    /** Returns the variable's value, or skips (flag set) or fails (flag not set). */
    fun require(name: String, skipFlag: String): String {
        val v = get(name)
        if (v != null) return v
        Assume.assumeFalse("$name is not set and $skipFlag=1", skipping(skipFlag))
        throw AssertionError("$name is not set: set it, or set $skipFlag=1 to skip these tests on purpose")
    }

    /**
     * A file of the repository found by walking up from the working directory, so the same test
     * runs from ci/check.sh (repo root), Gradle or Android Studio (module directory).
     */
    fun repoFile(relative: String): File? {
        var dir: File? = File(System.getProperty("user.dir")).absoluteFile
        while (dir != null) {
            File(dir, relative).takeIf { it.exists() }?.let { return it }
            dir = dir.parentFile
        }
        return null
    }

    /** [repoFile], or a skip that says which file is missing and why (a checkout without it). */
    fun requireRepoFile(relative: String): File = repoFile(relative)
        ?: run {
            Assume.assumeTrue("$relative not found above ${System.getProperty("user.dir")} (run from a full checkout)", false)
            throw IllegalStateException()
        }
}
