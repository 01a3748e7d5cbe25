// The errors of the SDK: what kassa answered (its dialect's code), or why no believable answer
// came. Unchecked, as java.net.http's own errors are wrapped.
package kassa.client;

public class KassaException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public KassaException(String message) {
        super(message);
    }

    /** kassa refused the request: the dialect's code as text ("10000005", "1005"). */
    public static final class Api extends KassaException {
        private static final long serialVersionUID = 1L;

        public final String dialect;
        public final String code;
        public final String msg;
        public final int httpStatus;
        /** Seconds kassa asked to wait before a retry, or -1. */
        public final long retryAfterS;

        public Api(String dialect, String code, String msg, int httpStatus, long retryAfterS) {
            super("kassa refused the request: " + code + " " + msg + " (HTTP " + httpStatus + ")");
            this.dialect = dialect;
            this.code = code;
            this.msg = msg;
            this.httpStatus = httpStatus;
            this.retryAfterS = retryAfterS;
        }

        /** 1 format, 2 signature and app, 3 business rule, 4 not found, 5 duplicate, 9 internal. */
        public int family() {
            return code.isEmpty() || !Character.isDigit(code.charAt(0)) ? 0 : code.charAt(0) - '0';
        }

        public boolean retryable() {
            return httpStatus == 429 || httpStatus == 500 || httpStatus == 502 || httpStatus == 503
                    || httpStatus == 504;
        }
    }

    /** kassa could not be reached or did not answer in time. A create may have been stored:
     * send the identical request again (an idempotent replay) or query the order. */
    public static final class Transport extends KassaException {
        private static final long serialVersionUID = 1L;

        public Transport(String message) {
            super(message);
        }
    }

    /** Not signed by the platform key (or the app's webhook secret). */
    public static final class BadSignature extends KassaException {
        private static final long serialVersionUID = 1L;

        public BadSignature(String message) {
            super(message);
        }
    }

    /** Genuinely signed data about another app than the caller's: never trust it. */
    public static final class WrongApp extends KassaException {
        private static final long serialVersionUID = 1L;

        public WrongApp(String message) {
            super(message);
        }
    }

    /** Not what the API promises (not JSON, nested, fields missing). */
    public static class Malformed extends KassaException {
        private static final long serialVersionUID = 1L;

        public Malformed(String message) {
            super(message);
        }
    }

    /** A BR Code that is well formed but whose CRC does not hold. */
    public static final class CrcMismatch extends Malformed {
        private static final long serialVersionUID = 1L;

        public CrcMismatch(String message) {
            super(message);
        }
    }
}
