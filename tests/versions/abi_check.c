/*
 * What every C host does at start-up: compare the loaded library's
 * hms_abi_version() with the header it was compiled against, and refuse a
 * library of another major or an older minor, naming both versions.
 * Exit status 0 (accepted) or 3 (refused). tests/versions/run.sh runs it
 * against the real library and against a test build reporting ABI 2.0.
 */
#include <stdio.h>

#include "hms_ffi.h"

int main(void)
{
    unsigned long abi = hms_abi_version();
    long major = (long)(abi >> 16), minor = (long)(abi & 0xffffu);
    if (major != HMS_ABI_VERSION_MAJOR || minor < HMS_ABI_VERSION_MINOR) {
        fprintf(stderr,
                "refused: libhms_ffi ABI %ld.%ld is incompatible with this program, built for ABI "
                "%d.%d (needs %d.x with x >= %d)\n",
                major, minor, HMS_ABI_VERSION_MAJOR, HMS_ABI_VERSION_MINOR, HMS_ABI_VERSION_MAJOR,
                HMS_ABI_VERSION_MINOR);
        return 3;
    }
    printf("accepted: libhms_ffi ABI %ld.%ld (%s), built for %d.%d\n", major, minor, hms_version(),
           HMS_ABI_VERSION_MAJOR, HMS_ABI_VERSION_MINOR);
    return 0;
}
