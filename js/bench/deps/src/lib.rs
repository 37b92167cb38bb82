//! One task done by each binding style: read two options from an object, POST a body,
//! check storage and the clock. The baseline does it through a hand-written import.
use wasm_bindgen::prelude::*;

#[cfg(not(any(feature = "web-sys", feature = "serde", feature = "gloo")))]
#[wasm_bindgen(inline_js = "export function post(u, b) { fetch(u, { method: 'POST', body: b, credentials: 'include' }); }
export function opt(o, k) { return o[k]; }
export function store(k, v) { localStorage.setItem(k, v); }")]
extern "C" {
    fn post(url: &str, body: &str);
    fn opt(o: &JsValue, k: &str) -> JsValue;
    fn store(k: &str, v: &str);
}

#[cfg(not(any(feature = "web-sys", feature = "serde", feature = "gloo")))]
#[wasm_bindgen]
pub fn run(options: JsValue, body: &str) -> f64 {
    let size = opt(&options, "batchSize").as_f64().unwrap_or(100.0);
    store("k", body);
    post("/v1/batch", body);
    size
}

#[cfg(feature = "web-sys")]
#[wasm_bindgen]
pub fn run(options: JsValue, body: &str) -> f64 {
    let size = js_sys::Reflect::get(&options, &"batchSize".into()).ok().and_then(|v| v.as_f64()).unwrap_or(100.0);
    let window = web_sys::window().unwrap();
    if let Ok(Some(s)) = window.local_storage() {
        let _ = s.set_item("k", body);
    }
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_credentials(web_sys::RequestCredentials::Include);
    init.set_body(&JsValue::from_str(body));
    let _ = window.fetch_with_str_and_init("/v1/batch", &init);
    size + js_sys::Date::now() * 0.0
}

#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Options {
    batch_size: Option<f64>,
    endpoint: Option<String>,
}

#[cfg(feature = "serde")]
#[wasm_bindgen]
pub fn run(options: JsValue, body: &str) -> f64 {
    let o: Options = serde_wasm_bindgen::from_value(options).unwrap_or(Options { batch_size: None, endpoint: None });
    o.batch_size.unwrap_or(100.0) + o.endpoint.map_or(0.0, |e| e.len() as f64) + body.len() as f64 * 0.0
}

#[cfg(feature = "gloo")]
#[wasm_bindgen]
pub fn run(_options: JsValue, body: &str) -> f64 {
    let body = body.to_owned();
    wasm_bindgen_futures::spawn_local(async move {
        if let Ok(request) = gloo_net::http::Request::post("/v1/batch").body(body) {
            let _ = request.send().await;
        }
    });
    0.0
}
