/* Placeholder until the parser lands. */
#include "internal.h"

int32_t pal_parse_request(const uint8_t *buf, uint32_t off, uint32_t len, int32_t router, const uint8_t *ip,
                          uint32_t ip_len, int32_t *out) {
  (void)buf; (void)off; (void)len; (void)router; (void)ip; (void)ip_len;
  out[OUT_STATUS] = PAL_E_BAD_REQUEST;
  return PAL_E_BAD_REQUEST;
}
int32_t pal_parse_response(const uint8_t *buf, uint32_t off, uint32_t len, int32_t req_method, int32_t *out) {
  (void)buf; (void)off; (void)len; (void)req_method;
  out[OUT_STATUS] = PAL_E_BAD_STATUS;
  return PAL_E_BAD_STATUS;
}
int32_t pal_chunked_scan(const uint8_t *buf, uint32_t off, uint32_t len, int32_t *state) {
  (void)buf; (void)off; (void)len; (void)state;
  return PAL_E_BAD_CHUNK;
}
