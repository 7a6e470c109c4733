#include "common/config/config_yaml.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/config/error_list.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "google/protobuf/reflection.h"
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/yaml.h"

namespace anylb::config {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::OneofDescriptor;
using google::protobuf::Reflection;

// Proto's Duration range (duration.proto): +-10000 years.
constexpr int64_t kMaxDurationSeconds = 315576000000;

std::string Quote(std::string_view text) {
  return absl::StrCat("\"", absl::CEscape(std::string(text)), "\"");
}

std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "an empty value";
    case YAML::NodeType::Scalar:
      return absl::StrCat("the value ", Quote(node.Scalar()));
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

// EditDistance is Levenshtein's distance, for "did you mean".
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1,
                         diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// IsValidUtf8 is RFC 3629's UTF-8: no overlong forms, surrogates or code
// points past U+10FFFF. Proto3 string fields must hold UTF-8.
bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    int length;
    uint32_t min;
    uint32_t code;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if ((c & 0xe0) == 0xc0) {
      length = 2, min = 0x80, code = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      length = 3, min = 0x800, code = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      length = 4, min = 0x10000, code = c & 0x07;
    } else {
      return false;
    }
    if (i + length > s.size()) return false;
    for (int k = 1; k < length; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      code = (code << 6) | (d & 0x3f);
    }
    if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
      return false;
    }
    i += length;
  }
  return true;
}

// EnumPrefix is the prefix every value of `e` carries ("SCHEDULER_"): its
// zero value's name without "UNSPECIFIED" (lb.v1's convention).
std::string EnumPrefix(const EnumDescriptor* e) {
  const std::string& zero = e->value(0)->name();
  constexpr std::string_view kUnspecified = "UNSPECIFIED";
  if (zero.size() > kUnspecified.size() &&
      zero.compare(zero.size() - kUnspecified.size(), kUnspecified.size(),
                   kUnspecified) == 0) {
    return zero.substr(0, zero.size() - kUnspecified.size());
  }
  return "";
}

// ShortName is the lower-case value name without the enum's prefix
// (SCHEDULER_MH -> "mh").
std::string ShortName(const EnumValueDescriptor* v, const std::string& prefix) {
  std::string name = v->name();
  if (!prefix.empty() && name.rfind(prefix, 0) == 0) {
    name = name.substr(prefix.size());
  }
  return absl::AsciiStrToLower(name);
}

// Converter walks a YAML tree along a message's descriptor and fills the
// message, recording every problem in `errors`.
class Converter {
 public:
  Converter(std::string_view source, ErrorList* errors)
      : source_(source), errors_(errors) {}

  void ToMessage(const YAML::Node& node, const std::string& path,
                 Message* msg) {
    if (node.IsNull()) return;  // An empty message.
    if (!node.IsMap()) {
      Error(node, path,
            absl::StrCat("expected a mapping of ", msg->GetDescriptor()->name(),
                         " fields, got ", Describe(node)));
      return;
    }
    const Descriptor* descriptor = msg->GetDescriptor();
    std::map<std::string, YAML::Mark> seen;
    for (auto it = node.begin(); it != node.end(); ++it) {
      // Copies: *it is a temporary that owns the pair.
      const YAML::Node key = it->first;
      const YAML::Node value = it->second;
      if (!key.IsScalar()) {
        Error(key, path,
              absl::StrCat("a key must be a field name, got ", Describe(key)));
        continue;
      }
      const std::string& name = key.Scalar();
      const std::string field_path =
          path.empty() ? name : absl::StrCat(path, ".", name);
      if (auto [first, inserted] = seen.emplace(name, key.Mark()); !inserted) {
        Error(key, field_path,
              absl::StrCat("duplicate key (first at line ",
                           first->second.line + 1, ")"));
        continue;
      }
      const FieldDescriptor* field = descriptor->FindFieldByName(name);
      if (field == nullptr) {
        Error(key, field_path, UnknownField(descriptor, name));
        continue;
      }
      if (field->is_map()) {
        Error(key, field_path, "map fields are not supported in config files");
        continue;
      }
      if (!CheckOneof(key, field_path, *msg, field)) continue;
      if (field->is_repeated()) {
        SetRepeated(value, field_path, msg, field);
      } else {
        SetSingular(value, field_path, msg, field);
      }
    }
  }

 private:
  void Error(const YAML::Node& node, const std::string& path,
             std::string_view message) {
    std::string line = source_;
    const YAML::Mark mark = node.Mark();
    if (!mark.is_null()) {
      absl::StrAppend(&line, ":", mark.line + 1, ":", mark.column + 1);
    }
    absl::StrAppend(&line, ": ");
    if (!path.empty()) absl::StrAppend(&line, path, ": ");
    line.append(message);
    errors_->Add(std::move(line));
  }

  static std::string UnknownField(const Descriptor* descriptor,
                                  const std::string& name) {
    std::string message =
        absl::StrCat("unknown field ", Quote(name), " in ", descriptor->name());
    const FieldDescriptor* best = descriptor->FindFieldByCamelcaseName(name);
    if (best == nullptr) {
      size_t best_distance = std::max<size_t>(2, name.size() / 3) + 1;
      for (int i = 0; i < descriptor->field_count(); ++i) {
        const FieldDescriptor* f = descriptor->field(i);
        const size_t d = EditDistance(name, f->name());
        if (d < best_distance) {
          best_distance = d;
          best = f;
        }
      }
    }
    if (best != nullptr) {
      absl::StrAppend(&message, "; did you mean ", Quote(best->name()), "?");
    } else {
      std::vector<std::string> names;
      names.reserve(descriptor->field_count());
      for (int i = 0; i < descriptor->field_count(); ++i) {
        names.push_back(descriptor->field(i)->name());
      }
      absl::StrAppend(&message, "; fields are ", absl::StrJoin(names, ", "));
    }
    return message;
  }

  // CheckOneof: no other member of `field`'s oneof is set already.
  bool CheckOneof(const YAML::Node& key, const std::string& path,
                  const Message& msg, const FieldDescriptor* field) {
    const OneofDescriptor* oneof = field->real_containing_oneof();
    if (oneof == nullptr) return true;
    const Reflection* reflection = msg.GetReflection();
    const FieldDescriptor* set =
        reflection->GetOneofFieldDescriptor(msg, oneof);
    if (set == nullptr || set == field) return true;
    std::vector<std::string> names;
    names.reserve(oneof->field_count());
    for (int i = 0; i < oneof->field_count(); ++i) {
      names.push_back(oneof->field(i)->name());
    }
    Error(key, path,
          absl::StrCat("only one of ", absl::StrJoin(names, ", "),
                       " may be set, and ", set->name(), " is set already"));
    return false;
  }

  void SetRepeated(const YAML::Node& value, const std::string& path,
                   Message* msg, const FieldDescriptor* field) {
    if (value.IsNull()) return;
    if (!value.IsSequence()) {
      Error(value, path,
            absl::StrCat("expected a list, got ", Describe(value)));
      return;
    }
    for (size_t i = 0; i < value.size(); ++i) {
      const std::string element_path = absl::StrCat(path, "[", i, "]");
      const YAML::Node element = value[i];
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        Message* child = msg->GetReflection()->AddMessage(msg, field);
        SetMessage(element, element_path, child);
      } else {
        SetScalar(element, element_path, msg, field, /*repeated=*/true);
      }
    }
  }

  void SetSingular(const YAML::Node& value, const std::string& path,
                   Message* msg, const FieldDescriptor* field) {
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      SetMessage(value, path, msg->GetReflection()->MutableMessage(msg, field));
      return;
    }
    if (value.IsNull()) return;  // Unset: the default.
    SetScalar(value, path, msg, field, /*repeated=*/false);
  }

  void SetMessage(const YAML::Node& value, const std::string& path,
                  Message* msg) {
    if (msg->GetDescriptor()->full_name() == "google.protobuf.Duration") {
      SetDuration(value, path, msg);
      return;
    }
    ToMessage(value, path, msg);
  }

  void SetDuration(const YAML::Node& value, const std::string& path,
                   Message* msg) {
    if (value.IsNull()) return;
    absl::Duration d;
    const bool is_scalar = value.IsScalar();
    if (!is_scalar || !absl::ParseDuration(value.Scalar(), &d) ||
        d == absl::InfiniteDuration() || d == -absl::InfiniteDuration() ||
        absl::AbsDuration(d) > absl::Seconds(kMaxDurationSeconds)) {
      Error(value, path,
            absl::StrCat("expected a duration like \"30s\", \"1.5s\" or "
                         "\"250ms\", got ",
                         Describe(value)));
      return;
    }
    const int64_t seconds = absl::ToInt64Seconds(d);
    const int64_t nanos = absl::ToInt64Nanoseconds(d - absl::Seconds(seconds));
    const Descriptor* descriptor = msg->GetDescriptor();
    const Reflection* reflection = msg->GetReflection();
    reflection->SetInt64(msg, descriptor->FindFieldByName("seconds"), seconds);
    reflection->SetInt32(msg, descriptor->FindFieldByName("nanos"),
                         static_cast<int32_t>(nanos));
  }

  template <typename T>
  bool ParseInteger(const YAML::Node& value, const std::string& path, T* out) {
    T parsed{};
    if (value.IsScalar() && absl::SimpleAtoi(value.Scalar(), &parsed)) {
      *out = parsed;
      return true;
    }
    Error(value, path,
          absl::StrCat("expected an integer in ", std::numeric_limits<T>::min(),
                       "..", std::numeric_limits<T>::max(), ", got ",
                       Describe(value)));
    return false;
  }

  void SetScalar(const YAML::Node& value, const std::string& path, Message* msg,
                 const FieldDescriptor* field, bool repeated) {
    const Reflection* r = msg->GetReflection();
    if (!value.IsScalar()) {
      Error(value, path,
            absl::StrCat("expected ", ExpectedScalar(field), ", got ",
                         Describe(value)));
      return;
    }
    const std::string& text = value.Scalar();
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32: {
        int32_t v;
        if (!ParseInteger(value, path, &v)) return;
        repeated ? r->AddInt32(msg, field, v) : r->SetInt32(msg, field, v);
        return;
      }
      case FieldDescriptor::CPPTYPE_INT64: {
        int64_t v;
        if (!ParseInteger(value, path, &v)) return;
        repeated ? r->AddInt64(msg, field, v) : r->SetInt64(msg, field, v);
        return;
      }
      case FieldDescriptor::CPPTYPE_UINT32: {
        uint32_t v;
        if (!ParseInteger(value, path, &v)) return;
        repeated ? r->AddUInt32(msg, field, v) : r->SetUInt32(msg, field, v);
        return;
      }
      case FieldDescriptor::CPPTYPE_UINT64: {
        uint64_t v;
        if (!ParseInteger(value, path, &v)) return;
        repeated ? r->AddUInt64(msg, field, v) : r->SetUInt64(msg, field, v);
        return;
      }
      case FieldDescriptor::CPPTYPE_DOUBLE:
      case FieldDescriptor::CPPTYPE_FLOAT: {
        double v;
        if (!absl::SimpleAtod(text, &v)) {
          Error(value, path,
                absl::StrCat("expected a number, got ", Describe(value)));
          return;
        }
        if (field->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE) {
          repeated ? r->AddDouble(msg, field, v) : r->SetDouble(msg, field, v);
        } else {
          const auto f = static_cast<float>(v);
          repeated ? r->AddFloat(msg, field, f) : r->SetFloat(msg, field, f);
        }
        return;
      }
      case FieldDescriptor::CPPTYPE_BOOL: {
        const std::string lower = absl::AsciiStrToLower(text);
        if (lower != "true" && lower != "false") {
          Error(value, path,
                absl::StrCat("expected true or false, got ", Describe(value)));
          return;
        }
        const bool v = lower == "true";
        repeated ? r->AddBool(msg, field, v) : r->SetBool(msg, field, v);
        return;
      }
      case FieldDescriptor::CPPTYPE_STRING: {
        std::string v = text;
        if (field->type() == FieldDescriptor::TYPE_BYTES) {
          if (!absl::Base64Unescape(text, &v)) {
            Error(value, path,
                  absl::StrCat("expected base64 bytes, got ", Describe(value)));
            return;
          }
        } else if (!IsValidUtf8(text)) {
          Error(value, path, "not valid UTF-8 text");
          return;
        }
        repeated ? r->AddString(msg, field, std::move(v))
                 : r->SetString(msg, field, std::move(v));
        return;
      }
      case FieldDescriptor::CPPTYPE_ENUM: {
        const EnumValueDescriptor* v = FindEnumValue(field->enum_type(), text);
        if (v == nullptr) {
          Error(value, path,
                absl::StrCat("unknown value ", Quote(text), "; one of ",
                             EnumChoices(field->enum_type())));
          return;
        }
        repeated ? r->AddEnum(msg, field, v) : r->SetEnum(msg, field, v);
        return;
      }
      case FieldDescriptor::CPPTYPE_MESSAGE:
        break;  // Handled by SetMessage.
    }
  }

  static std::string ExpectedScalar(const FieldDescriptor* field) {
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_ENUM:
        return absl::StrCat("one of ", EnumChoices(field->enum_type()));
      case FieldDescriptor::CPPTYPE_BOOL:
        return "true or false";
      case FieldDescriptor::CPPTYPE_STRING:
        return field->type() == FieldDescriptor::TYPE_BYTES ? "base64 bytes"
                                                            : "a string";
      default:
        return "a number";
    }
  }

  // FindEnumValue accepts the full name (SCHEDULER_MH) or the short form
  // (mh).
  static const EnumValueDescriptor* FindEnumValue(const EnumDescriptor* e,
                                                  const std::string& text) {
    if (const EnumValueDescriptor* v = e->FindValueByName(text)) return v;
    const std::string prefix = EnumPrefix(e);
    for (int i = 0; i < e->value_count(); ++i) {
      const EnumValueDescriptor* v = e->value(i);
      if (v->number() == 0) continue;  // Unspecified: by full name only.
      if (ShortName(v, prefix) == text) return v;
    }
    return nullptr;
  }

  static std::string EnumChoices(const EnumDescriptor* e) {
    const std::string prefix = EnumPrefix(e);
    std::vector<std::string> names;
    for (int i = 0; i < e->value_count(); ++i) {
      if (e->value(i)->number() == 0) continue;
      names.push_back(ShortName(e->value(i), prefix));
    }
    return absl::StrJoin(names, ", ");
  }

  std::string source_;
  ErrorList* errors_;
};

// DocumentStarts records where each document starts and ignores the rest.
class DocumentStarts : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override {
    marks.push_back(mark);
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& /*mark*/, YAML::anchor_t /*anchor*/) override {}
  void OnAlias(const YAML::Mark& /*mark*/, YAML::anchor_t /*anchor*/) override {
  }
  void OnScalar(const YAML::Mark& /*mark*/, const std::string& /*tag*/,
                YAML::anchor_t /*anchor*/,
                const std::string& /*value*/) override {}
  void OnSequenceStart(const YAML::Mark& /*mark*/, const std::string& /*tag*/,
                       YAML::anchor_t /*anchor*/,
                       YAML::EmitterStyle::value /*style*/) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& /*mark*/, const std::string& /*tag*/,
                  YAML::anchor_t /*anchor*/,
                  YAML::EmitterStyle::value /*style*/) override {}
  void OnMapEnd() override {}

  std::vector<YAML::Mark> marks;
};

}  // namespace

absl::StatusOr<lb::v1::ConfigSnapshot> ParseConfigYaml(
    std::string_view text, std::string_view source) {
  const std::string source_name(source);
  ErrorList errors(kMaxConfigErrors);
  lb::v1::ConfigSnapshot snapshot;
  try {
    // Not YAML::LoadAll: yaml-cpp 0.7's loops forever, allocating, on text
    // after a closing bracket ("{a: 1}, b"; found by config_fuzz_test).
    // Load() reads the first document; one more HandleNextDocument() says
    // whether anything follows it.
    const std::string copy(text);
    const YAML::Node root = YAML::Load(copy);
    std::istringstream in(copy);
    YAML::Parser parser(in);
    DocumentStarts starts;
    parser.HandleNextDocument(starts);
    if (parser.HandleNextDocument(starts) && starts.marks.size() > 1) {
      const YAML::Mark mark = starts.marks[1];
      return absl::InvalidArgumentError(absl::StrCat(
          source_name, ":", mark.line + 1, ":", mark.column + 1,
          ": text after the end of the first YAML document; the config is "
          "one document (remove any \"---\" line or stray text)"));
    }
    if (root.IsNull()) {
      return absl::InvalidArgumentError(absl::StrCat(
          source_name,
          ": the config is empty; expected a mapping with node: and "
          "services:"));
    }
    Converter(source_name, &errors).ToMessage(root, "", &snapshot);
  } catch (const YAML::Exception& e) {
    // yaml-cpp reports syntax errors (and only those, here) by exception;
    // they stop at the control-plane edge.
    std::string where = source_name;
    if (!e.mark.is_null()) {
      absl::StrAppend(&where, ":", e.mark.line + 1, ":", e.mark.column + 1);
    }
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": YAML syntax error: ", e.msg));
  }
  if (!errors.empty()) return errors.ToStatus();
  return snapshot;
}

absl::StatusOr<lb::v1::ConfigSnapshot> LoadConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int error = errno;
    const std::string message = absl::StrCat(
        "reading config file ", Quote(path), ": ", std::strerror(error));
    switch (error) {
      case ENOENT:
        return absl::NotFoundError(message);
      case EACCES:
      case EPERM:
        return absl::PermissionDeniedError(message);
      default:
        return absl::FailedPreconditionError(message);
    }
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) {
    return absl::DataLossError(
        absl::StrCat("reading config file ", Quote(path), ": read error"));
  }
  return ParseConfigYaml(buffer.str(), path);
}

}  // namespace anylb::config
