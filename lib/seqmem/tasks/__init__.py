"""Seeded tasks and data sets, by kind: what the chapters train on.

Every generator takes a ``torch.Generator`` (``None``: torch's global one), so a seed fixes the
data, and returns batch-first tensors (B, T, ...) on the ``device`` asked for (drawn on the
generator's device, then moved: the same seed gives the same data everywhere).

- ``seqmem.tasks.algorithmic``: the adding problem, copy, parity, delayed echo, future tagging,
  number to bits, collapsing runs (chapters 1 and 2); copying and reversing letter strings as
  source-target pairs (chapter 4); the parity of vectors shown at once (chapter 9).
- ``seqmem.tasks.counting``: the lecture's counting memory, its slide and its hand-built LSTM cell.
- ``seqmem.tasks.language``: slot filling, named entities (BIO), sentiment with negation.
- ``seqmem.tasks.digits``: strips of handwritten digits, for CTC (chapter 3); digit images
  captioned with the digits' words (chapter 4).
- ``seqmem.tasks.translation``: numbers from English words to Chinese numerals, dates from five
  human styles to ISO 8601 (chapter 4), each with a fixed held-out split.
- ``seqmem.tasks.memory``: the Neural Turing Machine's copy, repeat copy and associative recall
  (binary vectors, a recall phase with no input, a mask of the scored steps) and their scores,
  bit errors and the cost per sequence in bits (chapter 8).
- ``seqmem.tasks.babi``: bAbI-style stories (tasks 1, 2 and 16: one and two supporting facts,
  basic induction) with their answers and supporting facts, and their encoding for a memory
  network (chapter 5); the test split never shares a story with the training split.
- ``seqmem.tasks.tables``: tables of integers with templated questions and their exact answers, a
  number or cells of the table, for the Neural Programmer (chapter 9).

The sequence-to-sequence tasks of chapter 4 return ``seqmem.text.Pairs`` (``digit_captions``:
``Captions``): padded source and target ids, the target ending with EOS, and the texts; each task's
vocabularies come from a function (``symbol_vocab``, ``number_vocabs``, ``date_vocabs``,
``caption_vocab``), so a model can be built before any data are drawn.

Everything is also importable from ``seqmem.tasks`` itself. The later chapters' kinds (geometry,
scenes, documents, tables) are modules of their own.
"""
from ..core import IGNORE_INDEX
from . import algorithmic, babi, counting, digits, language, translation
from . import documents, scenes
from .documents import DOC_FILLER, DOC_LABELS, DOC_TOPICS, Documents, cue_documents, document_text, document_vocab
from .scenes import (QUESTION_KINDS, SCENE_COLORS, SCENE_REGIONS, SCENE_SHAPES, Scenes, question_text, region_mask,
                     scene_vocab, visual_questions)
from .algorithmic import (adding_problem, collapse_runs, copy_task, copy_tokens, delayed_echo, future_tagging,
                          number_to_bits, parity, parity_vectors, reverse_tokens, symbol_vocab)
from .counting import (SLIDE_INPUTS, SLIDE_MEMORY, SLIDE_OUTPUTS, counting_cell, counting_cell_weights,
                       counting_memory, counting_targets)
from .digits import Captions, caption_vocab, digit_captions, digit_images, digit_strips
from .language import (HELDOUT_NAMES, LOCATIONS, NEGATIVE, NER_TAGS, NER_TEMPLATES, ORGANISATIONS, PERSONS_FIRST,
                       PERSONS_LAST, POSITIVE, SLOT_CITIES, SLOT_LABELS, ner_sentences, sentiment_sentences,
                       slot_filling, slot_vocab)
from .babi import (BABI_ANIMALS, BABI_COLORS, BABI_OBJECTS, BABI_PEOPLE, BABI_PLACES, BABI_SPECIES, BABI_TASKS,
                   SLIDE_STORY, BabiBatch, Story, babi_split, babi_stories, babi_vocab, encode_stories, story_text)
from .translation import (DATE_STYLES, chinese_numeral, date_normalisation, date_split, date_text, date_vocabs,
                          number_split, number_translation, number_vocabs, number_words)
from . import templates
from .templates import (NAME_POOLS, TEMPLATES, VOCAB_NAMES, name_pool, template_pairs, template_sentences,
                        template_vocab)
from . import geometry
from .geometry import (PointerData, argsort, convex_hull, convex_hulls, cycle_length, held_karp, polygon_area,
                       sorting_problems, tsp_problems)
from . import memory
from .memory import (MemoryBatch, associative_recall, bit_errors, copy_sequences, copy_series, repeat_copy,
                     repeat_encoding, sequence_cost)
from . import tables
from .tables import (MULTI_COLUMN_KINDS, TABLE_COLUMNS, TABLE_KINDS, Tables, reference_program, table_question_text,
                     table_questions, table_vocab)

__all__ = [
    "IGNORE_INDEX", "algorithmic", "babi", "counting", "digits", "language", "translation",
    # algorithmic
    "adding_problem", "copy_task", "parity", "parity_vectors", "delayed_echo", "future_tagging", "number_to_bits", "collapse_runs",
    "copy_tokens", "reverse_tokens", "symbol_vocab",
    # the lecture's counting memory
    "counting_targets", "counting_memory", "SLIDE_INPUTS", "SLIDE_MEMORY", "SLIDE_OUTPUTS",
    "counting_cell_weights", "counting_cell",
    # language
    "slot_filling", "slot_vocab", "SLOT_LABELS", "SLOT_CITIES", "ner_sentences", "NER_TAGS", "NER_TEMPLATES",
    "PERSONS_FIRST", "PERSONS_LAST", "LOCATIONS", "ORGANISATIONS", "HELDOUT_NAMES",
    "sentiment_sentences", "POSITIVE", "NEGATIVE",
    # digits
    "digit_images", "digit_strips", "digit_captions", "caption_vocab", "Captions",
    # translation
    "number_words", "chinese_numeral", "number_vocabs", "number_split", "number_translation",
    "DATE_STYLES", "date_text", "date_vocabs", "date_split", "date_normalisation",
    # bAbI-style stories
    "Story", "BabiBatch", "babi_stories", "babi_vocab", "babi_split", "encode_stories", "story_text", "SLIDE_STORY",
    "BABI_TASKS", "BABI_PEOPLE", "BABI_PLACES", "BABI_OBJECTS", "BABI_ANIMALS", "BABI_SPECIES", "BABI_COLORS",
    # documents with a cue sentence
    "documents", "Documents", "cue_documents", "document_vocab", "document_text", "DOC_TOPICS", "DOC_LABELS",
    "DOC_FILLER",
    # scenes with yes/no questions
    "scenes", "Scenes", "visual_questions", "scene_vocab", "question_text", "region_mask", "SCENE_COLORS",
    "SCENE_SHAPES", "SCENE_REGIONS", "QUESTION_KINDS",
    # template sentences with unseen names (copying)
    "templates", "template_pairs", "template_sentences", "template_vocab", "name_pool", "NAME_POOLS", "TEMPLATES",
    "VOCAB_NAMES",
    # geometry: point sets labelled by sequences of their own positions (chapter 7)
    "geometry", "PointerData", "convex_hull", "polygon_area", "argsort", "held_karp", "cycle_length", "convex_hulls",
    "sorting_problems", "tsp_problems",
    # memory tasks of the Neural Turing Machine (chapter 8)
    "memory", "MemoryBatch", "copy_sequences", "copy_series", "repeat_copy", "associative_recall", "repeat_encoding",
    "bit_errors", "sequence_cost",
    # tables with templated questions (chapter 9)
    "tables", "Tables", "table_questions", "table_vocab", "table_question_text", "reference_program", "TABLE_KINDS",
    "MULTI_COLUMN_KINDS", "TABLE_COLUMNS",
]
