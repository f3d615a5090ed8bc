#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include "airgap_shims.h"

int airgap_start_writeback(int fd, long long offset, long long length) {
#ifdef SYNC_FILE_RANGE_WRITE
    return sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE);
#else
    (void)fd; (void)offset; (void)length;
    return -1;
#endif
}

int airgap_release_free_memory(void) {
    return malloc_trim(0);
}
