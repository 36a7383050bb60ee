#ifndef SWIFT_MOTAN_CZLIB_SHIM_H
#define SWIFT_MOTAN_CZLIB_SHIM_H

#include <zlib.h>

/* deflateInit2/inflateInit2 are macros; Swift needs functions. */
static inline int cmotan_deflate_init_gzip(z_streamp strm, int level) {
    return deflateInit2(strm, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}
static inline int cmotan_inflate_init_gzip(z_streamp strm) {
    /* 15 + 32: accept both gzip and zlib headers, as motan-php's zlib_decode does. */
    return inflateInit2(strm, 15 + 32);
}

#endif
