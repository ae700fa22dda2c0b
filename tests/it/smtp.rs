//! A real SMTP server on 127.0.0.1 for the tests (mailin-embedded, run on a
//! thread), handing every received message out through a channel.

use std::net::TcpListener;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailin_embedded::{AuthMechanism, Handler, Response, Server, SslConfig, response};

/// One message as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: Vec<u8>,
    /// The user that authenticated, if any.
    pub user: Option<String>,
}

impl Received {
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&self.data)
            .expect("a parsable message")
    }
    pub fn subject(&self) -> String {
        self.parsed().subject().unwrap_or_default().to_string()
    }
    pub fn raw(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

#[derive(Clone)]
struct Sink {
    tx: Sender<Received>,
    reject: Arc<Vec<String>>,
    login: Option<(String, String)>,
    current: Arc<Mutex<Option<Received>>>,
    user: Arc<Mutex<Option<String>>>,
}

impl Handler for Sink {
    fn rcpt(&mut self, to: &str) -> Response {
        if self.reject.iter().any(|r| to.contains(r.as_str())) {
            response::NO_MAILBOX
        } else {
            response::OK
        }
    }
    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        *self.current.lock().unwrap() = Some(Received {
            from: from.to_string(),
            to: to.to_vec(),
            data: Vec::new(),
            user: self.user.lock().unwrap().clone(),
        });
        response::OK
    }
    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if let Some(r) = self.current.lock().unwrap().as_mut() {
            r.data.extend_from_slice(buf);
        }
        Ok(())
    }
    fn data_end(&mut self) -> Response {
        if let Some(r) = self.current.lock().unwrap().take() {
            let _ = self.tx.send(r);
        }
        response::OK
    }
    fn auth_plain(&mut self, _authz: &str, user: &str, password: &str) -> Response {
        match &self.login {
            Some((u, p)) if u == user && p == password => {
                *self.user.lock().unwrap() = Some(user.to_string());
                response::AUTH_OK
            }
            _ => response::INVALID_CREDENTIALS,
        }
    }
}

/// What kind of server to start.
#[derive(Default)]
pub struct Options {
    /// Recipients answered with 550.
    pub reject: Vec<String>,
    /// STARTTLS with the test CA's certificate, and AUTH PLAIN for this login.
    pub tls_login: Option<(String, String)>,
    /// Bind this port (a server that comes up late).
    pub port: Option<u16>,
}

pub struct SmtpServer {
    pub port: u16,
    rx: Receiver<Received>,
}

/// A free port on 127.0.0.1, for a server started later.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SmtpServer {
    pub fn start(opts: Options) -> SmtpServer {
        let (tx, rx) = channel();
        let listener = TcpListener::bind(("127.0.0.1", opts.port.unwrap_or(0))).unwrap();
        let port = listener.local_addr().unwrap().port();
        let sink = Sink {
            tx,
            reject: Arc::new(opts.reject),
            login: opts.tls_login.clone(),
            current: Arc::default(),
            user: Arc::default(),
        };
        let mut server = Server::new(sink);
        server.with_name("smtp.test").with_tcp_listener(listener);
        if opts.tls_login.is_some() {
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/");
            server
                .with_ssl(SslConfig::SelfSigned {
                    cert_path: format!("{dir}server.pem"),
                    key_path: format!("{dir}server.key"),
                })
                .unwrap()
                .with_auth(AuthMechanism::Plain);
        }
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        SmtpServer { port, rx }
    }

    /// The next message, waiting up to `secs`.
    pub fn next(&self, secs: u64) -> Option<Received> {
        self.rx.recv_timeout(Duration::from_secs(secs)).ok()
    }

    /// Every message received so far (waits briefly for stragglers).
    pub fn drain(&self) -> Vec<Received> {
        let mut out = Vec::new();
        while let Ok(r) = self.rx.recv_timeout(Duration::from_millis(300)) {
            out.push(r);
        }
        out
    }
}
