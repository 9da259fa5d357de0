// Testee of the official protobuf conformance suite (conformance_test_runner
// from the protobuf 3.21 sources) that converts through the core's C ABI.
//
// Protocol (conformance/conformance.proto): the runner writes, on our stdin,
// a little-endian uint32 length then a ConformanceRequest; we answer on
// stdout the same way with a ConformanceResponse, until EOF on stdin.
//
// Every conversion goes through hms_runtime_convert(rt, type, from, payload,
// to), under one runtime created at startup: the point is to test the core's
// codec, so libprotobuf is used here only to read requests and write
// responses, never to touch a payload.
//
// HMS_CONFORMANCE_DESCRIPTOR_SET names a FileDescriptorSet (protoc
// --include_imports) holding protobuf_test_messages.proto2/proto3 and their
// google/protobuf imports, registered once with hms_schema_register at
// startup.
//
// HMS_CONFORMANCE_JSON_NAMES selects the JSON field names the core writes,
// through the runtime's hms.v1.RuntimeConfig.json_names:
//   proto (default)  the proto field names (JSON_NAMES_PROTO, the default of
//                    the core and what hms_convert writes);
//   json             lowerCamelCase json_name (JSON_NAMES_LOWER_CAMEL_CASE),
//                    the default of protobuf's own JSON printers.
// scripts/protobuf_conformance.sh runs the suite once in each mode.
//
// The suite's validators read JSON output by lowerCamelCase key
// (value["optionalInt64"]), which the proto names mode does not write by
// definition. So in that mode every JSON answer is checked, then handed on
// with its keys renamed: libprotobuf's reference parser must accept the
// proto-names text as it is (util::JsonToBinaryString, which reads both
// names), and the core itself rewrites it to lowerCamelCase (JSON to JSON
// through a second runtime in the json mode), which is what the runner
// sees. Every test then runs in both modes with no exception list: the
// proto-names output is proven readable by the reference and by the core,
// and lossless, since the runner's checks still pass after the rewrite.

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

#include <unistd.h>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/type_resolver.h>
#include <google/protobuf/util/type_resolver_util.h>

#include <memory>

#include "conformance.pb.h"
#include "hms_ffi.h"

namespace {

using conformance::ConformanceRequest;
using conformance::ConformanceResponse;

enum class JsonNames { kProto, kJson };

bool ParseJsonNames(const char *text, JsonNames *out) {
    if (text == nullptr || *text == '\0' || std::strcmp(text, "proto") == 0) {
        *out = JsonNames::kProto;
        return true;
    }
    if (std::strcmp(text, "json") == 0) {
        *out = JsonNames::kJson;
        return true;
    }
    return false;
}

// The hms.v1.RuntimeConfig (in JSON) of the runtime that converts in the
// given naming mode; the limits stay the defaults (4 MiB, depth 64).
const char *RuntimeConfigJson(JsonNames mode) {
    switch (mode) {
        case JsonNames::kProto:
            return "{\"jsonNames\":\"JSON_NAMES_PROTO\"}";
        case JsonNames::kJson:
            return "{\"jsonNames\":\"JSON_NAMES_LOWER_CAMEL_CASE\"}";
    }
    return "{}";
}

// Reads exactly len bytes; false on EOF before the first byte. A short read
// after that is a broken pipe from the runner, which we cannot answer.
bool ReadAll(void *buf, size_t len) {
    auto *p = static_cast<char *>(buf);
    size_t done = 0;
    while (done < len) {
        ssize_t n = read(STDIN_FILENO, p + done, len - done);
        if (n == 0) {
            if (done == 0) return false;
            std::fprintf(stderr, "testee: unexpected EOF inside a request\n");
            std::exit(1);
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            std::perror("testee: read");
            std::exit(1);
        }
        done += static_cast<size_t>(n);
    }
    return true;
}

void WriteAll(const void *buf, size_t len) {
    const auto *p = static_cast<const char *>(buf);
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(STDOUT_FILENO, p + done, len - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            std::perror("testee: write");
            std::exit(1);
        }
        done += static_cast<size_t>(n);
    }
}

std::string BufText(const hms_buf &buf) {
    if (buf.data == nullptr) return std::string();
    return std::string(reinterpret_cast<const char *>(buf.data), buf.len);
}

// Status codes that mean "the input is not a valid message of this type":
// the core reports a malformed payload as DECODE_ERROR, a value out of its
// range (e.g. a Timestamp past year 9999) as OUT_OF_RANGE or
// INVALID_ARGUMENT, and nesting past its limit as RESOURCE_EXHAUSTED.
bool IsInputError(int32_t code) {
    switch (code) {
        case HMS_DECODE_ERROR:
        case HMS_INVALID_ARGUMENT:
        case HMS_OUT_OF_RANGE:
        case HMS_RESOURCE_EXHAUSTED:
            return true;
        default:
            return false;
    }
}

const char kTypeUrlPrefix[] = "type.googleapis.com";

// The proto names mode's second opinions (see the top of this file): the
// reference parser over the same schemas, and a runtime that writes
// lowerCamelCase keys.
struct ProtoNamesCheck {
    google::protobuf::DescriptorPool pool;
    std::unique_ptr<google::protobuf::util::TypeResolver> resolver;
    hms_runtime camel_rt = 0;
};

class Testee {
  public:
    Testee(hms_runtime rt, ProtoNamesCheck *proto_names) : rt_(rt), proto_names_(proto_names) {}
    ~Testee() {
        hms_buf_free(&out_);
        hms_buf_free(&err_);
        hms_buf_free(&probe_);
        hms_buf_free(&camel_);
    }
    Testee(const Testee &) = delete;
    Testee &operator=(const Testee &) = delete;

    void Serve(const ConformanceRequest &req, ConformanceResponse *resp) {
        // Only the binary and JSON suites are in scope: the core has no text
        // format, and JSPB is Google-internal (the protocol says to skip it).
        int32_t from = 0;
        const std::string *payload = nullptr;
        switch (req.payload_case()) {
            case ConformanceRequest::kProtobufPayload:
                from = HMS_FORMAT_PROTOBUF;
                payload = &req.protobuf_payload();
                break;
            case ConformanceRequest::kJsonPayload:
                from = HMS_FORMAT_JSON;
                payload = &req.json_payload();
                break;
            case ConformanceRequest::kTextPayload:
                resp->set_skipped("the core has no text format");
                return;
            case ConformanceRequest::kJspbPayload:
                resp->set_skipped("JSPB is not supported");
                return;
            case ConformanceRequest::PAYLOAD_NOT_SET:
                resp->set_runtime_error("request has no payload");
                return;
        }

        int32_t to = 0;
        switch (req.requested_output_format()) {
            case conformance::PROTOBUF:
                to = HMS_FORMAT_PROTOBUF;
                break;
            case conformance::JSON:
                to = HMS_FORMAT_JSON;
                break;
            case conformance::TEXT_FORMAT:
                resp->set_skipped("the core has no text format");
                return;
            case conformance::JSPB:
                resp->set_skipped("JSPB is not supported");
                return;
            default:
                resp->set_runtime_error("unspecified output format");
                return;
        }

        const std::string &type = req.message_type();
        int32_t rc = hms_runtime_convert(rt_, type.data(), type.size(), from,
                                         reinterpret_cast<const uint8_t *>(payload->data()),
                                         payload->size(), to, &out_, &err_);
        if (rc == HMS_OK) {
            if (to == HMS_FORMAT_PROTOBUF) {
                resp->set_protobuf_payload(BufText(out_));
            } else if (proto_names_ != nullptr) {
                AnswerWithCamelKeys(type, resp);
            } else {
                resp->set_json_payload(BufText(out_));
            }
            return;
        }

        std::string detail = "hms_runtime_convert " + std::to_string(rc) + ": " + BufText(err_);
        if (!IsInputError(rc)) {
            // NOT_FOUND (type not registered), PANIC, INTERNAL...: the
            // testee or the core is broken, not the payload.
            resp->set_runtime_error(detail);
            return;
        }
        // The core decodes and encodes in one call, so an input error code
        // does not say which half failed. Decoding alone (to protobuf, which
        // cannot fail to encode a decoded message) tells them apart: the
        // suite expects parse_error for bad input, serialize_error for a
        // message that parses but has no representation in the output format
        // (e.g. a Duration out of the JSON range).
        if (to != HMS_FORMAT_PROTOBUF &&
            hms_runtime_convert(rt_, type.data(), type.size(), from,
                                reinterpret_cast<const uint8_t *>(payload->data()),
                                payload->size(), HMS_FORMAT_PROTOBUF, &probe_,
                                nullptr) == HMS_OK) {
            resp->set_serialize_error(detail);
        } else {
            resp->set_parse_error(detail);
        }
    }

  private:
    // The proto-names JSON in out_, checked by the reference parser, then
    // rewritten by the core with lowerCamelCase keys for the runner.
    void AnswerWithCamelKeys(const std::string &type, ConformanceResponse *resp) {
        std::string json = BufText(out_);
        std::string binary;
        // The reference's JSON parser knows no extensions (its own failure
        // list has Proto2.JsonInput.FieldNameExtension), so for a message
        // that has extension ranges it skips keys it cannot resolve; the
        // core's rewrite below still reads every key.
        google::protobuf::util::JsonParseOptions options;
        const auto *desc = proto_names_->pool.FindMessageTypeByName(type);
        options.ignore_unknown_fields = desc != nullptr && desc->extension_range_count() > 0;
        auto parsed = google::protobuf::util::JsonToBinaryString(
            proto_names_->resolver.get(), std::string(kTypeUrlPrefix) + "/" + type, json, &binary,
            options);
        if (!parsed.ok()) {
            resp->set_runtime_error("the reference parser refuses the proto-names output " +
                                    json + ": " + parsed.ToString());
            return;
        }
        int32_t rc = hms_runtime_convert(proto_names_->camel_rt, type.data(), type.size(),
                                         HMS_FORMAT_JSON,
                                         reinterpret_cast<const uint8_t *>(json.data()),
                                         json.size(), HMS_FORMAT_JSON, &camel_, &err_);
        if (rc != HMS_OK) {
            resp->set_runtime_error("the core refuses its own proto-names output " + json +
                                    ": " + std::to_string(rc) + " " + BufText(err_));
            return;
        }
        resp->set_json_payload(BufText(camel_));
    }

    hms_runtime rt_;
    ProtoNamesCheck *proto_names_;  // null in the json names mode
    // One reusable output buffer each, as hms_ffi.h recommends: the core
    // grows them as needed and they are freed once at exit.
    hms_buf out_ = {};
    hms_buf err_ = {};
    hms_buf probe_ = {};
    hms_buf camel_ = {};
};

// A runtime converting in the given naming mode, or 0 (reported) when the
// core refuses its configuration.
hms_runtime NewRuntime(JsonNames mode) {
    const char *config = RuntimeConfigJson(mode);
    hms_runtime rt = 0;
    hms_buf err = {};
    int32_t rc = hms_runtime_new(HMS_FORMAT_JSON, reinterpret_cast<const uint8_t *>(config),
                                 std::strlen(config), &rt, &err);
    if (rc != HMS_OK) {
        std::fprintf(stderr, "testee: hms_runtime_new(%s) failed (%d): %s\n", config,
                     static_cast<int>(rc), BufText(err).c_str());
        rt = 0;
    }
    hms_buf_free(&err);
    return rt;
}

// The reference's view of the same FileDescriptorSet (files come in
// dependency order from protoc --include_imports).
bool BuildReferencePool(const std::string &fds, ProtoNamesCheck *check) {
    google::protobuf::FileDescriptorSet set;
    if (!set.ParseFromString(fds)) {
        std::fprintf(stderr, "testee: the descriptor set does not parse\n");
        return false;
    }
    for (const auto &file : set.file()) {
        if (check->pool.BuildFile(file) == nullptr) {
            std::fprintf(stderr, "testee: the reference pool refuses %s\n", file.name().c_str());
            return false;
        }
    }
    check->resolver.reset(
        google::protobuf::util::NewTypeResolverForDescriptorPool(kTypeUrlPrefix, &check->pool));
    return true;
}

bool ReadFile(const char *path, std::string *out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "testee: cannot open %s\n", path);
        return false;
    }
    out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    return true;
}

bool RegisterSchemas(const char *path, const std::string &fds) {
    hms_buf err = {};
    int32_t rc = hms_schema_register(reinterpret_cast<const uint8_t *>(fds.data()),
                                     fds.size(), &err);
    if (rc != HMS_OK) {
        std::fprintf(stderr, "testee: hms_schema_register(%s) failed (%d): %s\n", path,
                     static_cast<int>(rc), BufText(err).c_str());
    }
    hms_buf_free(&err);
    return rc == HMS_OK;
}

// Answers the runner's requests until EOF on stdin; the exit status.
int Serve(hms_runtime rt, ProtoNamesCheck *proto_names) {
    Testee testee(rt, proto_names);
    std::string in;
    std::string out;
    ConformanceRequest req;
    ConformanceResponse resp;
    for (;;) {
        uint32_t len = 0;
        if (!ReadAll(&len, sizeof len)) break;  // EOF: the runner is done
        in.resize(len);
        if (len > 0 && !ReadAll(&in[0], len)) {
            std::fprintf(stderr, "testee: unexpected EOF inside a request\n");
            return 1;
        }
        resp.Clear();
        if (!req.ParseFromString(in)) {
            resp.set_runtime_error("ConformanceRequest does not parse");
        } else {
            testee.Serve(req, &resp);
        }
        if (!resp.SerializeToString(&out)) {
            std::fprintf(stderr, "testee: cannot serialize a ConformanceResponse\n");
            return 1;
        }
        uint32_t out_len = static_cast<uint32_t>(out.size());
        WriteAll(&out_len, sizeof out_len);
        WriteAll(out.data(), out.size());
    }
    return 0;
}

}  // namespace

int main(int /*argc*/, char **argv) {
    // Other arguments are ignored: the 3.21 runner passes the program's own
    // path again as argv[1], so the settings travel in the environment.
    const char *fds = std::getenv("HMS_CONFORMANCE_DESCRIPTOR_SET");
    if (fds == nullptr || *fds == '\0') {
        std::fprintf(stderr,
                     "usage: HMS_CONFORMANCE_DESCRIPTOR_SET=FILE [HMS_CONFORMANCE_JSON_NAMES=proto|json] %s\n"
                     "         (run by conformance_test_runner)\n",
                     argv[0]);
        return 2;
    }
    JsonNames names;
    const char *mode = std::getenv("HMS_CONFORMANCE_JSON_NAMES");
    if (!ParseJsonNames(mode, &names)) {
        std::fprintf(stderr, "testee: HMS_CONFORMANCE_JSON_NAMES=%s: expected proto or json\n",
                     mode);
        return 2;
    }
    std::string set;
    if (!ReadFile(fds, &set) || !RegisterSchemas(fds, set)) return 1;
    hms_runtime rt = NewRuntime(names);
    if (rt == 0) return 1;

    ProtoNamesCheck proto_names;
    bool checked = names == JsonNames::kProto;
    if (checked) {
        proto_names.camel_rt = NewRuntime(JsonNames::kJson);
        if (proto_names.camel_rt == 0 || !BuildReferencePool(set, &proto_names)) return 1;
    }
    int status = Serve(rt, checked ? &proto_names : nullptr);
    if (proto_names.camel_rt != 0) hms_runtime_free(proto_names.camel_rt);
    hms_runtime_free(rt);
    return status;
}
