#include <archive.h>
#include <archive_entry.h>

// libarchive's AE_IF* macros are casts Swift cannot import; plain constants instead.
static const unsigned int airgap_AE_IFREG = 0100000;
static const unsigned int airgap_AE_IFLNK = 0120000;
static const unsigned int airgap_AE_IFSOCK = 0140000;
static const unsigned int airgap_AE_IFCHR = 0020000;
static const unsigned int airgap_AE_IFBLK = 0060000;
static const unsigned int airgap_AE_IFDIR = 0040000;
static const unsigned int airgap_AE_IFIFO = 0010000;
