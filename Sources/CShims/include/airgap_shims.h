#ifndef AIRGAP_SHIMS_H
#define AIRGAP_SHIMS_H
/// Starts writeback of a file range without waiting (Linux sync_file_range, a GNU extension that
/// Swift's Glibc module does not expose). Returns 0, or -1 where unsupported.
int airgap_start_writeback(int fd, long long offset, long long length);
/// Hands the pages malloc holds free back to the kernel (glibc malloc_trim, from malloc.h, which
/// Swift's Glibc module does not expose). Returns 1 when memory was released.
int airgap_release_free_memory(void);
#endif
