package org.fractureedge.core

import java.io.File
import kotlin.system.exitProcess
import org.junit.runner.Description
import org.junit.runner.JUnitCore
import org.junit.runner.Request
import org.junit.runner.notification.Failure
import org.junit.runner.notification.RunListener

/**
 * Runs every `*Test` class found next to this one and prints the plain closing line
 * `N passed, N failed, N skipped` that CI reads (JUnit's console runner prints none).
 * Usage: java -cp ... org.fractureedge.core.TestMainKt [ClassName ...]
 */
fun main(args: Array<String>) {
    val classes = if (args.isNotEmpty()) args.map { Class.forName(it) } else discoverTestClasses()
    val counter = CountingListener()
    val core = JUnitCore()
    core.addListener(counter)
    for (c in classes) core.run(Request.aClass(c))
    println("${counter.passed} passed, ${counter.failed} failed, ${counter.skipped} skipped")
    exitProcess(if (counter.failed == 0 && counter.passed > 0) 0 else 1)
}

private fun discoverTestClasses(): List<Class<*>> {
    val root = File(CountingListener::class.java.protectionDomain.codeSource.location.toURI())
    val pkgDir = File(root, "org/fractureedge/core")
    return pkgDir
        .walk()
        .filter { it.isFile && it.name.endsWith("Test.class") && '$' !in it.name }
        .map { it.relativeTo(root).path.removeSuffix(".class").replace(File.separatorChar, '.') }
        .sorted()
        .map { Class.forName(it) }
        .toList()
}

private class CountingListener : RunListener() {
    var passed = 0
    var failed = 0
    var skipped = 0
    private var current: Description? = null
    private var currentOutcome = Outcome.PASS

    private enum class Outcome { PASS, FAIL, SKIP }

    override fun testStarted(description: Description) {
        current = description
        currentOutcome = Outcome.PASS
    }

    override fun testFailure(failure: Failure) {
        if (failure.description == current) {
            currentOutcome = Outcome.FAIL
        } else {
            // A class-level failure (e.g. @BeforeClass or Parameterized data) outside any test.
            failed++
        }
        println("FAIL ${failure.description.displayName}: ${failure.message}")
        println(failure.trace.lineSequence().take(12).joinToString("\n") { "    $it" })
    }

    override fun testAssumptionFailure(failure: Failure) {
        if (failure.description == current) currentOutcome = Outcome.SKIP
        println("SKIP ${failure.description.displayName}: ${failure.message}")
    }

    override fun testIgnored(description: Description) {
        skipped++
        println("SKIP ${description.displayName} (@Ignore)")
    }

    override fun testFinished(description: Description) {
        when (currentOutcome) {
            Outcome.PASS -> passed++
            Outcome.FAIL -> failed++
            Outcome.SKIP -> skipped++
        }
        current = null
    }
}
