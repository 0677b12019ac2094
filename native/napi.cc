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
double F64(const Napi::Value &v) { return v.As<Napi::Number>().DoubleValue(); }
double *Float64Data(const Napi::Value &v) { return v.As<Napi::Float64Array>().Data(); }

// parseRequest(buf, off, len, router, ip, out)
Napi::Value ParseRequest(const Napi::CallbackInfo &info) {
  auto ip = info[4].As<Napi::Buffer<uint8_t>>();
  auto out = info[5].As<Napi::Int32Array>();
  // The parser writes a normalised path up to the end of out[OUT_SIZE]: a shorter array would be overrun.
  if (out.ElementLength() < OUT_SIZE) {
    Napi::RangeError::New(info.Env(), "parseRequest: out must hold OUT_SIZE int32 slots").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  int32_t r = pal_parse_request(BufferData(info[0]), U32(info[1]), U32(info[2]), I32(info[3]), ip.Data(),
                                static_cast<uint32_t>(ip.Length()), out.Data());
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

// ---- shared dictionary: each takes the same arguments as its C function, with
// a Buffer's length standing in for path_len / value_cap. A key length beyond its
// Buffer is refused here, since C would read past it.

Napi::Number Result(const Napi::CallbackInfo &info, int32_t r) { return Napi::Number::New(info.Env(), r); }

// Checks that key[0, keyLen) lies in the Buffer at info[index] and returns its data, or null.
const uint8_t *KeyData(const Napi::CallbackInfo &info, size_t index) {
  auto key = info[index].As<Napi::Buffer<uint8_t>>();
  return U32(info[index + 1]) <= key.Length() ? key.Data() : nullptr;
}

// shdictOpen(path, capacity, flags)
Napi::Value ShdictOpen(const Napi::CallbackInfo &info) {
  auto path = info[0].As<Napi::Buffer<uint8_t>>();
  return Result(info, pal_shdict_open(path.Data(), static_cast<uint32_t>(path.Length()), F64(info[1]), I32(info[2])));
}

// shdictClose(dict)
Napi::Value ShdictClose(const Napi::CallbackInfo &info) { return Result(info, pal_shdict_close(I32(info[0]))); }

// shdictGet(dict, key, keyLen, value, out)
Napi::Value ShdictGet(const Napi::CallbackInfo &info) {
  const uint8_t *key = KeyData(info, 1);
  if (key == nullptr) return Result(info, PAL_SHDICT_E_ARG);
  auto value = info[3].As<Napi::Buffer<uint8_t>>();
  return Result(info, pal_shdict_get(I32(info[0]), key, U32(info[2]), value.Data(),
                                     static_cast<uint32_t>(value.Length()), Float64Data(info[4])));
}

// shdictStore(dict, mode, key, keyLen, value, valueLen, ttlMs, flags)
Napi::Value ShdictStore(const Napi::CallbackInfo &info) {
  const uint8_t *key = KeyData(info, 2);
  auto value = info[4].As<Napi::Buffer<uint8_t>>();
  if (key == nullptr || U32(info[5]) > value.Length()) return Result(info, PAL_SHDICT_E_ARG);
  return Result(info, pal_shdict_store(I32(info[0]), I32(info[1]), key, U32(info[3]), value.Data(), U32(info[5]),
                                       F64(info[6]), U32(info[7])));
}

// shdictStoreNumber(dict, mode, key, keyLen, number, ttlMs, flags)
Napi::Value ShdictStoreNumber(const Napi::CallbackInfo &info) {
  const uint8_t *key = KeyData(info, 2);
  if (key == nullptr) return Result(info, PAL_SHDICT_E_ARG);
  return Result(info, pal_shdict_store_number(I32(info[0]), I32(info[1]), key, U32(info[3]), F64(info[4]),
                                              F64(info[5]), U32(info[6])));
}

// shdictIncr(dict, key, keyLen, delta, init, initTtlMs, hasInit, out)
Napi::Value ShdictIncr(const Napi::CallbackInfo &info) {
  const uint8_t *key = KeyData(info, 1);
  if (key == nullptr) return Result(info, PAL_SHDICT_E_ARG);
  return Result(info, pal_shdict_incr(I32(info[0]), key, U32(info[2]), F64(info[3]), F64(info[4]), F64(info[5]),
                                      I32(info[6]), Float64Data(info[7])));
}

// shdictDelete(dict, key, keyLen)
Napi::Value ShdictDelete(const Napi::CallbackInfo &info) {
  const uint8_t *key = KeyData(info, 1);
  if (key == nullptr) return Result(info, PAL_SHDICT_E_ARG);
  return Result(info, pal_shdict_delete(I32(info[0]), key, U32(info[2])));
}

// shdictExpire(dict, key, keyLen, ttlMs)
Napi::Value ShdictExpire(const Napi::CallbackInfo &info) {
  const uint8_t *key = KeyData(info, 1);
  if (key == nullptr) return Result(info, PAL_SHDICT_E_ARG);
  return Result(info, pal_shdict_expire(I32(info[0]), key, U32(info[2]), F64(info[3])));
}

// shdictTtl(dict, key, keyLen, out)
Napi::Value ShdictTtl(const Napi::CallbackInfo &info) {
  const uint8_t *key = KeyData(info, 1);
  if (key == nullptr) return Result(info, PAL_SHDICT_E_ARG);
  return Result(info, pal_shdict_ttl(I32(info[0]), key, U32(info[2]), Float64Data(info[3])));
}

// shdictFlushAll(dict)
Napi::Value ShdictFlushAll(const Napi::CallbackInfo &info) { return Result(info, pal_shdict_flush_all(I32(info[0]))); }

// shdictFlushExpired(dict, maxCount)
Napi::Value ShdictFlushExpired(const Napi::CallbackInfo &info) {
  return Result(info, pal_shdict_flush_expired(I32(info[0]), U32(info[1])));
}

// shdictStats(dict, out)
Napi::Value ShdictStats(const Napi::CallbackInfo &info) {
  return Result(info, pal_shdict_stats(I32(info[0]), Float64Data(info[1])));
}

// shdictDebugHoldLock(dict, holdMs, dirty, notifyFd)
Napi::Value ShdictDebugHoldLock(const Napi::CallbackInfo &info) {
  return Result(info, pal_shdict_debug_hold_lock(I32(info[0]), F64(info[1]), I32(info[2]), I32(info[3])));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("parseRequest", Napi::Function::New(env, ParseRequest));
  exports.Set("parseResponse", Napi::Function::New(env, ParseResponse));
  exports.Set("chunkedScan", Napi::Function::New(env, ChunkedScan));
  exports.Set("routerBuild", Napi::Function::New(env, RouterBuild));
  exports.Set("routerFree", Napi::Function::New(env, RouterFree));
  exports.Set("shdictOpen", Napi::Function::New(env, ShdictOpen));
  exports.Set("shdictClose", Napi::Function::New(env, ShdictClose));
  exports.Set("shdictGet", Napi::Function::New(env, ShdictGet));
  exports.Set("shdictStore", Napi::Function::New(env, ShdictStore));
  exports.Set("shdictStoreNumber", Napi::Function::New(env, ShdictStoreNumber));
  exports.Set("shdictIncr", Napi::Function::New(env, ShdictIncr));
  exports.Set("shdictDelete", Napi::Function::New(env, ShdictDelete));
  exports.Set("shdictExpire", Napi::Function::New(env, ShdictExpire));
  exports.Set("shdictTtl", Napi::Function::New(env, ShdictTtl));
  exports.Set("shdictFlushAll", Napi::Function::New(env, ShdictFlushAll));
  exports.Set("shdictFlushExpired", Napi::Function::New(env, ShdictFlushExpired));
  exports.Set("shdictStats", Napi::Function::New(env, ShdictStats));
  exports.Set("shdictDebugHoldLock", Napi::Function::New(env, ShdictDebugHoldLock));
  return exports;
}

}  // namespace

NODE_API_MODULE(palisade_napi, Init)
