// N-API addon over the same C sources as the koffi library. Each export takes
// the same arguments as its C function; Buffers and Int32Arrays are passed
// through as raw pointers for the duration of the call only.
#include <napi.h>

#include "palisade.h"

namespace {

const uint8_t *BufferData(const Napi::Value &v) { return v.As<Napi::Buffer<uint8_t>>().Data(); }
int32_t *Int32Data(const Napi::Value &v) { return v.As<Napi::Int32Array>().Data(); }
uint32_t U32(const Napi::Value &v) { return v.As<Napi::Number>().Uint32Value(); }
int32_t I32(const Napi::Value &v) { return v.As<Napi::Number>().Int32Value(); }

// parseRequest(buf, off, len, router, ip, out)
Napi::Value ParseRequest(const Napi::CallbackInfo &info) {
  auto ip = info[4].As<Napi::Buffer<uint8_t>>();
  int32_t r = pal_parse_request(BufferData(info[0]), U32(info[1]), U32(info[2]), I32(info[3]), ip.Data(),
                                static_cast<uint32_t>(ip.Length()), Int32Data(info[5]));
  return Napi::Number::New(info.Env(), r);
}

// parseResponse(buf, off, len, reqMethod, out)
Napi::Value ParseResponse(const Napi::CallbackInfo &info) {
  int32_t r = pal_parse_response(BufferData(info[0]), U32(info[1]), U32(info[2]), I32(info[3]), Int32Data(info[4]));
  return Napi::Number::New(info.Env(), r);
}

// chunkedScan(buf, off, len, state)
Napi::Value ChunkedScan(const Napi::CallbackInfo &info) {
  int32_t r = pal_chunked_scan(BufferData(info[0]), U32(info[1]), U32(info[2]), Int32Data(info[3]));
  return Napi::Number::New(info.Env(), r);
}

// routerBuild(spec)
Napi::Value RouterBuild(const Napi::CallbackInfo &info) {
  auto spec = info[0].As<Napi::Buffer<uint8_t>>();
  return Napi::Number::New(info.Env(), pal_router_build(spec.Data(), static_cast<uint32_t>(spec.Length())));
}

// routerFree(handle)
Napi::Value RouterFree(const Napi::CallbackInfo &info) {
  pal_router_free(I32(info[0]));
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("parseRequest", Napi::Function::New(env, ParseRequest));
  exports.Set("parseResponse", Napi::Function::New(env, ParseResponse));
  exports.Set("chunkedScan", Napi::Function::New(env, ChunkedScan));
  exports.Set("routerBuild", Napi::Function::New(env, RouterBuild));
  exports.Set("routerFree", Napi::Function::New(env, RouterFree));
  return exports;
}

}  // namespace

NODE_API_MODULE(palisade_napi, Init)
