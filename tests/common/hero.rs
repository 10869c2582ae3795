//! A job hash in the Hero wire format, as `docs/wire-format.md` spells it: what a client
//! written from the docs stores.

use baobab::jobs::Job;

/// The fields a Hero client stores for `job` when it submits it.
pub fn hero_fields(job: &Job) -> Vec<(&'static str, String)> {
    let env: serde_json::Map<String, serde_json::Value> = job
        .env_vars
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    vec![
        ("script", job.script.clone()),
        ("status", "dispatched".to_string()),
        ("timeout", job.timeout.as_secs().to_string()),
        ("retries", job.retries.to_string()),
        ("env_vars", serde_json::Value::Object(env).to_string()),
        ("caller_id", job.caller_id.clone()),
        ("context_id", job.context_id.clone()),
        ("actor_id", job.actor_id.clone()),
    ]
}
