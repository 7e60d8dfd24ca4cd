/*
 * variorum_error.h: Variorum 0.8's error codes, for programs that name them. The public
 * calls of powerstack's libvariorum.so return 0 or -1 (VARIORUM_ERROR_RUNTIME), as Variorum's
 * do; the message on stderr names the cause.
 */
#ifndef VARIORUM_ERROR_H_INCLUDE
#define VARIORUM_ERROR_H_INCLUDE

enum variorum_error_e
{
    VARIORUM_ERROR_RUNTIME = -1,
    VARIORUM_ERROR_RAPL_INIT = -2,
    VARIORUM_ERROR_MSR_CLOSE = -3,
    VARIORUM_ERROR_MSR_READ = -4,
    VARIORUM_ERROR_ARRAY_BOUNDS = -5,
    VARIORUM_ERROR_PLATFORM_ENV = -6,
    VARIORUM_ERROR_MSR_MODULE = -7,
    VARIORUM_ERROR_MSR_WRITE = -8,
    VARIORUM_ERROR_MSR_BATCH = -9,
    VARIORUM_ERROR_INVAL = -10,
    VARIORUM_ERROR_UNSUPPORTED_PLATFORM = -11,
    VARIORUM_ERROR_UNSUPPORTED_ARCH = -12,
    VARIORUM_ERROR_FEATURE_NOT_IMPLEMENTED = -13,
    VARIORUM_ERROR_FEATURE_NOT_AVAILABLE = -14,
    VARIORUM_ERROR_FUNCTION = -15
};

#endif
