// csum_helpers.h: Internet checksum (RFC 1071) helpers for the real-server
// decapsulation program.

#ifndef ANYLB_LBNODE_DATAPLANE_BPF_CSUM_HELPERS_H_
#define ANYLB_LBNODE_DATAPLANE_BPF_CSUM_HELPERS_H_

// libbpf's headers use the uapi types: linux/* first.
// clang-format off
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
// clang-format on

#include "decap_consts.h"

// csum_fold folds a 32-bit one's-complement sum of 16-bit words to 16 bits
// and complements it (RFC 1071 §4.1). Summing a header that carries its own
// correct checksum gives 0.
static __always_inline __u16 csum_fold(__u32 sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (__u16)~sum;
}

// ipv4_header_checksum_ok returns whether the IPv4 header at `iph`, `hlen`
// bytes long (20..60, options included), carries a correct header checksum
// (RFC 791 §3.1). Every word is bounds-checked against `data_end`; a header
// that does not fit is reported as bad. The byte order of the words does not
// matter to a one's-complement sum that is compared with zero. A bounded
// loop (at most 30 rounds), which the verifier accepts since Linux 5.3.
static __always_inline int ipv4_header_checksum_ok(const void* iph, __u32 hlen,
                                                   const void* data_end) {
  const __u16* word = iph;
  __u32 sum = 0;
  for (int i = 0; i < DECAP_IPV4_MAX_HLEN / 2; i++) {
    if ((__u32)i * 2 >= hlen) break;
    const __u16* p = word + i;
    // Keep the check in the form the verifier tracks (pointer + constant
    // against data_end); clang would otherwise fold it into data_end - 1.
    barrier_var(p);
    if ((const void*)(p + 1) > data_end) return 0;
    sum += *p;
  }
  return csum_fold(sum) == 0;
}

#endif  // ANYLB_LBNODE_DATAPLANE_BPF_CSUM_HELPERS_H_
