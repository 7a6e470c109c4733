// JsonString: text as a JSON string literal (RFC 8259 §7), for the small
// JSON documents the daemons serve by hand (/admin/* endpoints).
//
// Threading: a pure function; any thread.

#ifndef ANYLB_COMMON_JSON_H_
#define ANYLB_COMMON_JSON_H_

#include <string>
#include <string_view>

namespace anylb {

// JsonString returns `text` quoted, with '"', '\\' and the control
// characters escaped (\n, \r, \t, else \u00XX). Other bytes are copied as
// they are: `text` is expected to be UTF-8.
std::string JsonString(std::string_view text);

}  // namespace anylb

#endif  // ANYLB_COMMON_JSON_H_
