"""The demo feed's articles: invented Italian tech news, one or more per topic.

Written for the project (no real outlet's text); the categories are chosen
to exercise the topic aliases of ``config/defaults.py``, and one ("Spazio")
matches no topic, so it lands in "Altro".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoItem:
    """One article of the demo feed."""

    slug: str
    title: str
    summary: str
    paragraphs: tuple[str, ...]
    author: str
    categories: tuple[str, ...]
    image: str  # name of a generated image: see images.py


ITEMS: tuple[DemoItem, ...] = (
    DemoItem(
        "modelli-linguistici-piccoli",
        "I modelli linguistici diventano piccoli: l'IA ora gira sul portatile",
        "Modelli da pochi miliardi di parametri rispondono in italiano senza connessione: "
        "più privacy, meno costi e qualche limite da conoscere.",
        ("Fino a poco tempo fa servivano server con schede grafiche da migliaia di euro. "
         "Oggi un modello linguistico compresso e quantizzato a 4 bit occupa pochi gigabyte e "
         "risponde in tempo reale anche su un portatile di fascia media.",
         "Il vantaggio principale è la riservatezza: i documenti non lasciano mai il computer. "
         "I limiti restano la conoscenza aggiornata e i ragionamenti lunghi, dove i modelli "
         "più grandi mantengono un margine netto."),
        "Giulia Ferri", ("Intelligenza artificiale", "LLM"), "ai",
    ),
    DemoItem(
        "phishing-fatture-elettroniche",
        "Ondata di phishing con finte fatture elettroniche: come riconoscerle",
        "Mail che imitano il Sistema di Interscambio e chiedono di scaricare un allegato: "
        "ecco i segnali che tradiscono la truffa.",
        ("Negli ultimi giorni molte aziende hanno ricevuto messaggi che annunciano una fattura "
         "«scartata» e invitano ad aprire un archivio compresso. Dentro c'è un eseguibile che "
         "installa un malware capace di rubare le credenziali salvate nel browser.",
         "Il consiglio degli esperti: controllare sempre il mittente reale, non aprire archivi "
         "inattesi e verificare la fattura direttamente dal portale ufficiale."),
        "Marco Bellini", ("Sicurezza", "Malware"), "security",
    ),
    DemoItem(
        "css-container-queries",
        "Container queries: il CSS che si adatta al riquadro, non allo schermo",
        "Supportate da tutti i browser principali, le container queries cambiano il modo di "
        "progettare componenti riutilizzabili.",
        ("Con le media queries un componente sa solo quanto è largo lo schermo. Con le container "
         "queries sa quanto spazio ha davvero: la stessa scheda può mostrarsi in colonna nella "
         "barra laterale e in riga nella pagina principale.",
         "Per iniziare basta dichiarare <code>container-type: inline-size</code> sul contenitore "
         "e scrivere le regole con <code>@container</code>."),
        "Sara Lombardi", ("Sviluppo web", "CSS"), "web",
    ),
    DemoItem(
        "batterie-smartphone-sette-anni",
        "Smartphone con aggiornamenti per sette anni: e la batteria?",
        "I produttori promettono software aggiornato a lungo, ma la batteria resta il punto "
        "debole. Quanto costa sostituirla e quando conviene.",
        ("Sette anni di aggiornamenti sono una buona notizia per l'ambiente e per il portafoglio. "
         "Ma dopo tre o quattro anni la batteria perde buona parte della capacità.",
         "La sostituzione in un centro autorizzato costa in genere tra 50 e 120 euro: una spesa "
         "che allunga la vita del telefono molto più di qualsiasi aggiornamento."),
        "Luca Moretti", ("Smartphone", "Android"), "mobile",
    ),
    DemoItem(
        "chip-risc-v-europa",
        "Chip RISC-V: l'Europa punta sull'architettura aperta",
        "Progetti di ricerca e piccole aziende europee scommettono su RISC-V per ridurre la "
        "dipendenza dalle licenze estere.",
        ("RISC-V è un'architettura di processori libera da royalty: chiunque può progettare un "
         "chip compatibile senza pagare licenze. Per questo attira università, startup e "
         "produttori di dispositivi industriali.",
         "La sfida ora è l'ecosistema software: compilatori, sistemi operativi e librerie "
         "maturano in fretta, ma servono ancora anni per i computer di uso quotidiano."),
        "Andrea Rinaldi", ("Processori", "Hardware"), "hardware",
    ),
    DemoItem(
        "satelliti-piccoli-lancio",
        "Piccoli satelliti, grandi affari: un'orbita per le startup",
        "I nanosatelliti costano sempre meno e aprono lo spazio a università e piccole imprese. "
        "Ma lo spazio in orbita bassa si affolla.",
        ("Un CubeSat grande come una scatola da scarpe può osservare i campi, misurare "
         "l'inquinamento o fare da ponte radio. Il lancio condiviso ne abbatte il costo.",
         "Gli esperti chiedono regole chiare per il rientro a fine vita: i detriti sono ormai "
         "un rischio concreto per tutti."),
        "Elena Costa", ("Spazio", "Startup"), "other",
    ),
    DemoItem(
        "ia-medici-referti",
        "L'IA che aiuta i medici a leggere i referti: cosa dicono gli studi",
        "Gli strumenti di machine learning segnalano le anomalie nelle immagini diagnostiche, "
        "ma la decisione resta al medico.",
        ("Negli studi più recenti i sistemi di apprendimento automatico riducono il tempo di "
         "lettura delle radiografie e segnalano i casi da guardare per primi.",
         "Resta aperta la questione della responsabilità: chi risponde di un errore? Le linee "
         "guida europee richiedono sempre la supervisione umana."),
        "Giulia Ferri", ("Machine learning", "Salute"), "ai",
    ),
    DemoItem(
        "password-passkey",
        "Addio password? Le passkey arrivano anche su banche e servizi pubblici",
        "Accesso con impronta o volto, niente codici da ricordare e molto meno phishing: "
        "come funzionano le passkey e come attivarle.",
        ("Una passkey è una coppia di chiavi crittografiche: quella privata resta sul "
         "dispositivo, quella pubblica sul sito. Non c'è nulla da rubare con una pagina falsa.",
         "Per attivarle basta cercare la voce «passkey» nelle impostazioni di sicurezza del "
         "servizio e confermare con il blocco schermo del telefono."),
        "Marco Bellini", ("Cybersecurity",), "security",
    ),
    DemoItem(
        "browser-consumi-memoria",
        "Browser e memoria: perché le schede aperte pesano così tanto",
        "Ogni scheda è un processo separato per motivi di sicurezza. Ecco come i browser "
        "cercano di risparmiare RAM senza rinunciare all'isolamento.",
        ("L'isolamento dei siti protegge da attacchi come Spectre, ma moltiplica i processi. "
         "Per compensare, i browser «congelano» le schede inattive e liberano memoria.",
         "Il consiglio pratico: meno estensioni installate, e i gruppi di schede al posto "
         "delle decine di finestre aperte."),
        "Sara Lombardi", ("Browser", "Web"), "web",
    ),
    DemoItem(
        "app-sanita-digitale",
        "Fascicolo sanitario in tasca: le app regionali alla prova",
        "Referti, ricette e prenotazioni dallo smartphone: abbiamo provato le app di alcune "
        "regioni. Funzionano, ma non tutte allo stesso modo.",
        ("Le app più riuscite permettono di scaricare i referti e mostrare la ricetta "
         "elettronica in farmacia con un codice a barre.",
         "In altre regioni l'accesso con SPID o CIE va ripetuto spesso e le notifiche "
         "mancano: c'è ancora lavoro da fare sull'esperienza d'uso."),
        "Luca Moretti", ("App", "iOS", "Android"), "mobile",
    ),
    DemoItem(
        "gpu-consumi-data-center",
        "GPU e data center: quanta energia consuma l'intelligenza artificiale",
        "I nuovi acceleratori grafici sono più efficienti, ma la domanda cresce più in fretta. "
        "Raffreddamento a liquido e recupero del calore diventano la norma.",
        ("Un armadio pieno di schede grafiche per l'addestramento può assorbire decine di "
         "kilowatt: l'aria non basta più a raffreddarlo.",
         "Alcuni data center nel Nord Europa cedono il calore alle reti di teleriscaldamento "
         "cittadine, trasformando un costo in una risorsa."),
        "Andrea Rinaldi", ("GPU", "Data center"), "hardware",
    ),
    DemoItem(
        "open-source-manutentori",
        "Software libero & manutentori: chi paga il codice che usiamo tutti?",
        "Librerie usate da milioni di applicazioni sono curate da pochi volontari. Fondi "
        "pubblici e aziende provano a cambiare le cose.",
        ("Molti progetti fondamentali vivono grazie al tempo libero di una o due persone. "
         "Quando si stancano, la sicurezza di tutti ne risente.",
         "Programmi di finanziamento pubblico e sponsorizzazioni aziendali stanno crescendo, "
         "ma restano una goccia rispetto al valore prodotto."),
        "Elena Costa", ("Open source", "Comunità"), "other",
    ),
)
