/* Declarations shared between the C files of the library; not exported. */
#ifndef PALISADE_INTERNAL_H
#define PALISADE_INTERNAL_H

#include "palisade.h"

/*
 * Implemented in router.c; called by pal_parse_request after a successful head
 * parse. Reads OUT_METHOD, the path ($uri: the normalised path in the URI
 * area when OUT_URI_LEN >= 0, else the span OUT_TARGET_START..OUT_PATH_END)
 * and the host span (OUT_HOST_START..OUT_HOST_END) from out, writes
 * OUT_ROUTE_COUNT and OUT_ROUTES. Returns 0, or PAL_E_ROUTER for an unknown
 * handle.
 */
int32_t pal_route_match(int32_t router, const uint8_t *buf, const uint8_t *ip, uint32_t ip_len, int32_t *out);

#endif
