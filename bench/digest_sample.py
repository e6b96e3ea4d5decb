"""A sample week of news and readers, for the digest benchmark and screenshots.

``sample_app(directory)`` builds the app on a fresh SQLite file in
``directory``; ``add_sample_week(session, ...)`` fills it with articles and
confirmed readers spread over (topics, language) segments.
"""

from __future__ import annotations

import hashlib
import itertools
import sys
from datetime import datetime, timedelta
from pathlib import Path

from flask import Flask
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailer import create_app
from mailer.db import get_engine
from mailer.models import Article, Base, Feed, Subscriber, SubscriberStatus

NOW = datetime(2026, 11, 25, 8, 0)
IMAGE_BASE = "https://img.example.it/"

STORIES = [
    ("ai", "Il nuovo modello linguistico open source che gira su un portatile",
     "Pesa meno di 4 GB, risponde in italiano e non manda nulla al cloud: abbiamo provato il modello "
     "sul nostro MacBook Air e su un vecchio ThinkPad. I risultati, i limiti e come installarlo in dieci minuti."),
    ("security", "Falla critica nei router domestici: aggiornate subito il firmware",
     "Un difetto nel pannello di amministrazione permette di prendere il controllo del dispositivo da remoto. "
     "I produttori coinvolti hanno già pubblicato le patch; ecco come verificare la versione installata."),
    ("web", "CSS, arrivano le query di contenitore per lo stile: cosa cambia per chi sviluppa",
     "Dopo anni di attesa i tre motori principali supportano le style queries. Un esempio pratico per "
     "rendere i componenti davvero indipendenti dal layout della pagina, senza una riga di JavaScript."),
    ("mobile", "Batterie degli smartphone: la ricarica lenta allunga davvero la vita?",
     "Abbiamo misurato per sei mesi la capacità residua di dodici telefoni ricaricati in modi diversi. "
     "Le differenze ci sono, ma non dove ve le aspettate."),
    ("hardware", "Processori a 2 nanometri: le prime schede madri arrivano a febbraio",
     "I produttori taiwanesi mostrano i primi prototipi. Consumi in calo del 30% a parità di prestazioni, "
     "ma i prezzi di lancio restano alti: chi dovrebbe aspettare e chi può comprare subito."),
    ("ai", "Scuola e intelligenza artificiale: le linee guida del ministero in cinque punti",
     "Gli insegnanti potranno usare gli assistenti per preparare le lezioni, non per valutare gli studenti. "
     "Cosa dice il documento, cosa manca e cosa ne pensano i presidi."),
    ("security", "Phishing via SMS a nome dei corrieri: come riconoscere i messaggi falsi",
     "La Polizia Postale segnala una nuova ondata di messaggi che chiedono di pagare una “tassa di sdoganamento”. "
     "Tre segnali per capire che è una truffa & cosa fare se avete già cliccato."),
    ("web", "Il W3C pubblica la bozza della nuova specifica sull'accessibilità",
     "Più attenzione ai contenuti dinamici e ai moduli: le novità della bozza e quando diventerà obbligatoria "
     "per i siti della pubblica amministrazione."),
    ("other", "Fibra ottica: a che punto è la copertura nelle aree interne",
     "I dati dell'ultimo trimestre mostrano un'accelerazione nei comuni sotto i cinquemila abitanti, "
     "ma in molte frazioni la connessione resta sotto i 30 megabit."),
]

SEGMENTS = [
    ("", "it"), ("", "en"), ("ai", "it"), ("security", "it"), ("web", "it"), ("mobile", "it"),
    ("hardware", "it"), ("other", "it"), ("ai,security", "it"), ("ai,web", "it"), ("mobile,web", "it"),
    ("hardware,mobile", "it"), ("ai,hardware", "it"), ("security,web", "it"), ("ai,mobile", "it"),
    ("ai", "en"), ("security", "en"), ("web", "en"), ("mobile", "en"), ("hardware", "en"),
    ("ai,security", "en"), ("ai,web", "en"), ("mobile,web", "en"), ("hardware,mobile", "en"),
    ("ai,hardware", "en"), ("security,web", "en"), ("ai,mobile", "en"), ("ai,security,web", "it"),
    ("ai,security,web", "en"), ("hardware,security", "it"),
]


def sample_app(directory: Path, **config: object) -> Flask:
    """The app on a fresh SQLite database in ``directory``."""
    url = f"sqlite:///{directory / 'sample.sqlite3'}"
    app = create_app({"ENV": "testing", "DATABASE_URL": url, "SECRET_KEY": "sample", "FEEDS": [],
                      "BASE_URL": "https://newsletter.example.it", **config})
    Base.metadata.create_all(get_engine(app))
    return app


def add_sample_week(session: Session, articles: int = len(STORIES), readers_per_segment: int = 3,
                    images: bool = True) -> None:
    """Insert ``articles`` articles (cycling the stories) and readers in every segment."""
    feed = Feed(url="https://www.example.it/feed.xml", title="Notizie Tech")
    session.add(feed)
    session.flush()
    for number, (topic, title, summary) in zip(range(articles), itertools.cycle(STORIES), strict=False):
        session.add(Article(
            feed_id=feed.id, dedup_key=f"sample-{number}", url=f"https://www.example.it/articoli/{number + 1}",
            title=title if number < len(STORIES) else f"{title} ({number // len(STORIES) + 1})",
            summary_html=f"<p>{summary}</p>", summary_text=summary, topic=topic,
            image_url=f"{IMAGE_BASE}{topic}.png" if images and number % 2 == 0 else None,
            published_at=NOW - timedelta(hours=3 * number + 1),
        ))
    counter = itertools.count()
    for topics, language in SEGMENTS:
        for _ in range(readers_per_segment):
            address = f"reader{next(counter)}@example.org"
            session.add(Subscriber(
                email=address, email_hash=hashlib.sha256(address.encode()).hexdigest(),
                status=SubscriberStatus.CONFIRMED, language=language, topics=topics, confirm_nonce="n" * 32,
            ))
    session.flush()
