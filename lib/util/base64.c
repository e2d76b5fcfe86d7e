/* Base64 encode and strict decode (RFC 4648 §4). */
#include "util/base64.h"

static const char alphabet[] =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t jobq__base64_encode(const void *data, size_t n, char *out) {
  const unsigned char *p = data;
  size_t o = 0;
  for (; n >= 3; p += 3, n -= 3) {
    unsigned long v = (unsigned long)p[0] << 16 | (unsigned long)p[1] << 8 | p[2];
    out[o++] = alphabet[v >> 18 & 63];
    out[o++] = alphabet[v >> 12 & 63];
    out[o++] = alphabet[v >> 6 & 63];
    out[o++] = alphabet[v & 63];
  }
  if (n > 0) {
    unsigned long v = (unsigned long)p[0] << 16 | (n == 2 ? (unsigned long)p[1] << 8 : 0);
    out[o++] = alphabet[v >> 18 & 63];
    out[o++] = alphabet[v >> 12 & 63];
    out[o++] = n == 2 ? alphabet[v >> 6 & 63] : '=';
    out[o++] = '=';
  }
  out[o] = '\0';
  return o;
}

static int value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

long jobq__base64_decode(const char *text, size_t len, unsigned char *out, size_t cap) {
  if (len % 4 != 0) return -1;
  size_t o = 0;
  for (size_t i = 0; i < len; i += 4) {
    int last = i + 4 == len;
    int v[4];
    int pad = 0;
    for (int j = 0; j < 4; j++) {
      char c = text[i + (size_t)j];
      if (c == '=' && last && j >= 2) {
        v[j] = 0;
        pad++;
        continue;
      }
      if (pad > 0) return -1; /* a character after '=' */
      v[j] = value(c);
      if (v[j] < 0) return -1;
    }
    /* The bits past the last byte must be zero (RFC 4648 §3.5). */
    if (pad == 2 && (v[1] & 15) != 0) return -1;
    if (pad == 1 && (v[2] & 3) != 0) return -1;
    size_t nb = 3 - (size_t)pad;
    if (o + nb > cap) return -1;
    unsigned long w = (unsigned long)v[0] << 18 | (unsigned long)v[1] << 12 |
                      (unsigned long)v[2] << 6 | (unsigned long)v[3];
    out[o++] = (unsigned char)(w >> 16);
    if (nb > 1) out[o++] = (unsigned char)(w >> 8);
    if (nb > 2) out[o++] = (unsigned char)w;
  }
  return (long)o;
}
