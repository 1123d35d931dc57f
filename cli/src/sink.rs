//! `hookline sink`: the target of every follow-up action in the local stack. A deliberately tiny
//! HTTP/1.1 server (one request per connection, `Content-Length` bodies) that prints each request
//! and answers 200, or 503 to the first N requests so the retry path can be watched.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::cli::SinkArgs;

/// Largest request head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest body accepted.
const MAX_BODY: usize = 1024 * 1024;

/// One received request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Method.
    pub method: String,
    /// Path (and query).
    pub path: String,
    /// Headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Received {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct State {
    seen: AtomicUsize,
    fail_first: usize,
    record: Option<std::sync::Mutex<std::fs::File>>,
}

/// Serves until interrupted.
pub async fn run(args: &SinkArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("binding {}", args.addr))?;
    let record = match &args.record {
        Some(path) => Some(std::sync::Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?,
        )),
        None => None,
    };
    let state = Arc::new(State {
        seen: AtomicUsize::new(0),
        fail_first: args.fail_first,
        record,
    });
    out!(
        "sink: listening on http://{} (first {} request(s) get 503)",
        listener.local_addr()?,
        args.fail_first
    );
    loop {
        let (stream, _) = listener.accept().await.context("accepting")?;
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(err) = serve(stream, &state).await {
                eprintln!("sink: {err:#}");
            }
        });
    }
}

async fn serve(mut stream: TcpStream, state: &State) -> anyhow::Result<()> {
    let request = match read_request(&mut stream).await {
        Ok(r) => r,
        Err(err) => {
            respond(&mut stream, 400, &json!({"error": err.to_string()})).await?;
            return Err(err);
        }
    };
    let n = state.seen.fetch_add(1, Ordering::SeqCst) + 1;
    let status = if n <= state.fail_first { 503 } else { 200 };
    let body: Value = serde_json::from_slice(&request.body)
        .unwrap_or_else(|_| Value::from(String::from_utf8_lossy(&request.body).into_owned()));
    let key = request.header("idempotency-key").unwrap_or("-");
    out!(
        "sink: #{n} {} {}  Idempotency-Key: {key}  -> {status}\n{}",
        request.method,
        request.path,
        serde_json::to_string_pretty(&body)?
    );
    if let Some(file) = &state.record {
        let line = json!({
            "n": n,
            "method": request.method,
            "path": request.path,
            "idempotency_key": request.header("idempotency-key"),
            "status": status,
            "body": body,
        });
        let mut file = file
            .lock()
            .map_err(|_| anyhow::anyhow!("record file lock poisoned"))?;
        writeln!(file, "{line}").context("writing the record file")?;
    }
    let answer = if status == 200 {
        json!({"ok": true})
    } else {
        json!({"error": "failing on purpose (--fail-first)"})
    };
    respond(&mut stream, status, &answer).await
}

/// Reads one HTTP/1.1 request with a `Content-Length` body (or none).
pub async fn read_request(stream: &mut TcpStream) -> anyhow::Result<Received> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut head_len = 0;
    reader.read_line(&mut line).await.context("reading")?;
    head_len += line.len();
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        bail!("malformed request line");
    };
    let (method, path) = (method.to_owned(), path.to_owned());
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await.context("reading")? == 0 {
            bail!("connection closed inside the request head");
        }
        head_len += line.len();
        if head_len > MAX_HEAD {
            bail!("request head larger than {MAX_HEAD} bytes");
        }
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if trimmed.is_empty() {
            break;
        }
        let Some((name, value)) = trimmed.split_once(':') else {
            bail!("malformed header line");
        };
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let mut received = Received {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    if received
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        bail!("chunked bodies are not supported; send Content-Length");
    }
    let len: usize = match received.header("content-length") {
        Some(v) => v.parse().context("bad Content-Length")?,
        None => 0,
    };
    if len > MAX_BODY {
        bail!("body larger than {MAX_BODY} bytes");
    }
    received.body = vec![0; len];
    reader
        .read_exact(&mut received.body)
        .await
        .context("reading the body")?;
    Ok(received)
}

async fn respond(stream: &mut TcpStream, status: u16, body: &Value) -> anyhow::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        _ => "Service Unavailable",
    };
    let body = body.to_string();
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_503_then_200_and_records() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("sink-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let record = dir.join("requests.jsonl");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let args = SinkArgs {
            addr: ([127, 0, 0, 1], port).into(),
            fail_first: 1,
            record: Some(record.clone()),
        };
        let server = tokio::spawn(async move { run(&args).await });
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}/receipt");
        let mut statuses = Vec::new();
        for _ in 0..50 {
            match client
                .post(&url)
                .header("Idempotency-Key", "k1")
                .json(&json!({"a": 1}))
                .send()
                .await
            {
                Ok(r) => {
                    statuses.push(r.status().as_u16());
                    if statuses.len() == 2 {
                        break;
                    }
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
        server.abort();
        assert_eq!(statuses, [503, 200]);
        let lines = std::fs::read_to_string(&record)?;
        let last: Value = serde_json::from_str(lines.lines().last().unwrap_or_default())?;
        assert_eq!(last["path"], "/receipt");
        assert_eq!(last["idempotency_key"], "k1");
        assert_eq!(last["body"]["a"], 1);
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
