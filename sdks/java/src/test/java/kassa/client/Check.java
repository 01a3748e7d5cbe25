// A plain test runner for the JDK alone: named checks, a summary line, a non-zero exit on any
// failure.
package kassa.client;

import java.util.ArrayList;
import java.util.List;

final class Check {
    interface Body {
        void run() throws Exception;
    }

    private final List<String> failures = new ArrayList<>();
    private int passed;

    void test(String name, Body body) {
        try {
            body.run();
            passed++;
        } catch (Throwable error) {
            failures.add(name + ": " + error);
        }
    }

    static void equal(Object expected, Object actual, String what) {
        if (expected == null ? actual != null : !expected.equals(actual)) {
            throw new AssertionError(what + ": expected " + expected + ", got " + actual);
        }
    }

    static void that(boolean condition, String what) {
        if (!condition) throw new AssertionError(what);
    }

    /** Prints the summary (`N passed, M failed`) and exits non-zero on a failure. */
    void finish() {
        failures.forEach(f -> System.out.println("FAILED " + f));
        System.out.println(passed + " passed, " + failures.size() + " failed");
        System.exit(failures.isEmpty() ? 0 : 1);
    }
}
