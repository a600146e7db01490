/*
 * A stand-in bcryptprimitives.dll for running udpchat.exe under wine.
 *
 * Rust's standard library on Windows (since 1.78) takes its random bytes
 * from ProcessPrng in bcryptprimitives.dll, which every Windows 10 and 11
 * has, but Debian's wine 8 does not: without it the exe exits with code 53
 * and prints nothing. This DLL, placed next to the exe, provides
 * ProcessPrng on top of RtlGenRandom (SystemFunction036 in advapi32.dll),
 * which wine does have. It is for testing under wine only and is never
 * shipped in the release archives (real Windows has the real one).
 *
 * Build (.ci/run does): x86_64-w64-mingw32-gcc -shared -O2 \
 *     -o bcryptprimitives.dll bcryptprimitives.c -ladvapi32
 */
#include <windows.h>

/* RtlGenRandom: BOOLEAN NTAPI SystemFunction036(PVOID, ULONG). */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

/* BOOL WINAPI ProcessPrng(PBYTE pbData, SIZE_T cbData): always TRUE on
 * Windows; here FALSE if RtlGenRandom fails. */
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
