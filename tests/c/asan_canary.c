/*
 * asan_canary.c: proves that tests/c/asan.sh really runs the core under
 * AddressSanitizer. It frees one library buffer twice (through a copy of its
 * hms_buf, which the ABI forbids); asan.sh expects ASan to report the double
 * free inside libhms_ffi and fails when the program exits cleanly instead.
 */
#include <stdio.h>
#include <string.h>

#include "hms_ffi.h"

int main(void)
{
    static const char method[] = "hms.sys.v1.System/Version";
    hms_runtime rt = 0;
    hms_buf resp = {0}, copy;
    if (hms_runtime_new(HMS_FORMAT_JSON, NULL, 0, &rt, NULL) != HMS_OK ||
        hms_call(rt, method, strlen(method), HMS_FORMAT_JSON, NULL, 0, NULL, 0, &resp, NULL) !=
            HMS_OK) {
        fprintf(stderr, "asan_canary: the setup calls failed\n");
        return 2;
    }
    copy = resp;
    hms_buf_free(&resp);
    hms_buf_free(&copy); /* the double free ASan must catch */
    hms_runtime_free(rt);
    return 0;
}
